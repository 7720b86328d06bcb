// A link printed by MLflow's client ends in "#/experiments/<id>/runs/<run id>"; the server never sees that part,
// so this page hands the run id to the server, which opens the run in the admin (mlflow_compat/home.py).
(function () {
  var found = /\/runs\/([0-9a-f]{32})/.exec(window.location.hash);
  if (found) {
    window.location.replace("/?run=" + found[1]);
  }
})();
