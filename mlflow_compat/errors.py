"""MLflow's error codes, with the HTTP status its server answers for each (its client acts on the code)."""

RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
UNAUTHENTICATED = "UNAUTHENTICATED"
PERMISSION_DENIED = "PERMISSION_DENIED"
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
INTERNAL_ERROR = "INTERNAL_ERROR"

STATUS = {
    RESOURCE_DOES_NOT_EXIST: 404,
    INVALID_PARAMETER_VALUE: 400,
    RESOURCE_ALREADY_EXISTS: 400,
    UNAUTHENTICATED: 401,
    PERMISSION_DENIED: 403,
    REQUEST_LIMIT_EXCEEDED: 429,
    TEMPORARILY_UNAVAILABLE: 503,
    ENDPOINT_NOT_FOUND: 404,
    INTERNAL_ERROR: 500,
}


class MlflowError(Exception):
    """A refusal in MLflow's terms: answered as {"error_code": code, "message": message} with the code's status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return STATUS[self.code]
