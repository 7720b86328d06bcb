"""Importers from experiment trackers (W&B exports, MLflow) into Bitscale run payloads."""

from bitscale_client.importers.mapping import Mapping, MappingError, TrackerRun, load_mapping

__all__ = ["Mapping", "MappingError", "TrackerRun", "load_mapping"]
