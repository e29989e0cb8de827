#!/usr/bin/env bash
# Installs the model server the AI inference tests and bench/flows.ts run against: Seldon's
# MLServer, a real KServe v2 / Open Inference Protocol server, with its scikit-learn runtime, in a
# venv under the cache, and trains a tiny model for it (a logistic regression on generated
# readings: is a room "too hot"?). No Debian package carries a v2 inference server; pip does,
# once (then instant). Prints the folder with `bin/mlserver` and `models/`.
set -euo pipefail
version="${EDGEMESH_MLSERVER_VERSION:-1.7.1}"
cache="${EDGEMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgemesh}"
root="$cache/mlserver-$version"
if [ ! -f "$root/.ready" ]; then
  echo "edgemesh: installing MLServer $version into $root (once; a few minutes)" >&2
  rm -rf "$root"
  python3 -m venv "$root"
  "$root/bin/pip" install -q --disable-pip-version-check "mlserver==$version" "mlserver-sklearn==$version" >&2
  mkdir -p "$root/models/too-hot"
  "$root/bin/python" - "$root/models/too-hot" <<'PY'
import json, sys
import joblib, numpy as np
from sklearn.linear_model import LogisticRegression
rng = np.random.default_rng(7)
x = rng.uniform(10, 40, size=(400, 2))          # temperature °C, humidity/2
y = (x[:, 0] + 0.1 * x[:, 1] > 29).astype(int)  # "too hot"
model = LogisticRegression().fit(x, y)
joblib.dump(model, f"{sys.argv[1]}/model.joblib")
json.dump({"name": "too-hot", "implementation": "mlserver_sklearn.SKLearnModel",
           "parameters": {"uri": "./model.joblib", "version": "v1"}},
          open(f"{sys.argv[1]}/model-settings.json", "w"))
PY
  touch "$root/.ready"
fi
echo "$root"
