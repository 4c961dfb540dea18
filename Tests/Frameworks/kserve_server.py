"""The KServe model server of the framework tests (kserve's ModelServer, as its sklearn server
does; that server is not on PyPI): joblib models in MODEL_REPO/<name>/, one loaded at start, the
others loaded and unloaded through the v2 repository API; HTTP (v1 and v2) and gRPC (v2).

usage: kserve_server.py --model_repo DIR --model_name iris [--workers N] [--http_port P --grpc_port G]
"""
import argparse
import glob
import os
from typing import Dict, Union

import joblib
from kserve import Model, ModelServer, model_server
from kserve.errors import InferenceError, ModelMissingError
from kserve.model_repository import ModelRepository
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.utils.utils import get_predict_input, get_predict_response


class JoblibModel(Model):
    def __init__(self, name: str, directory: str):
        super().__init__(name)
        self.directory = directory
        self.ready = False

    def load(self) -> bool:
        files = sorted(glob.glob(os.path.join(self.directory, "*.joblib")))
        if not files:
            raise ModelMissingError(self.directory)
        self.model = joblib.load(files[0])
        self.ready = True
        return self.ready

    async def predict(self, payload: Union[Dict, InferRequest], headers: Dict[str, str] = None,
                      response_headers: Dict[str, str] = None) -> Union[Dict, InferResponse]:
        try:
            return get_predict_response(payload, self.model.predict(get_predict_input(payload)), self.name)
        except Exception as error:
            raise InferenceError(str(error))

    def stop(self):
        self.model = None
        self.ready = False


class DirectoryRepository(ModelRepository):
    """kserve's base repository loads nothing: a model is MODEL_REPO/<name>/*.joblib."""

    async def load(self, name: str) -> bool:
        return self.load_model(name)

    def load_model(self, name: str) -> bool:
        model = JoblibModel(name, os.path.join(self.models_dir, name))
        if model.load():
            self.update(model)
        return model.ready


# kserve parses sys.argv when imported; its flags and ours in one parser.
parser = argparse.ArgumentParser(parents=[model_server.parser])
parser.add_argument("--model_repo", required=True)
args, _ = parser.parse_known_args()

if __name__ == "__main__":  # workers are started with multiprocessing's spawn: they import this file
    model = JoblibModel(args.model_name, os.path.join(args.model_repo, args.model_name))
    model.load()
    ModelServer(registered_models=DirectoryRepository(args.model_repo)).start([model])
