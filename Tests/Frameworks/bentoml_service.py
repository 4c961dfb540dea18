"""The BentoML (1.4 API) service of the framework tests: scikit-learn's iris classifier, two
workers under BentoML's arbiter, loaded with joblib from the model volume (IRIS_MODEL)."""
import os

import bentoml
import joblib
import numpy as np


@bentoml.service(workers=2, traffic={"timeout": 30})
class IrisClassifier:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["IRIS_MODEL"])

    @bentoml.api
    def predict(self, input_data: np.ndarray) -> np.ndarray:
        return self.model.predict(input_data)

    @bentoml.api
    def classify(self, sepal_length: float, sepal_width: float, petal_length: float, petal_width: float) -> dict:
        features = np.array([[sepal_length, sepal_width, petal_length, petal_width]])
        return {"class": int(self.model.predict(features)[0]), "proba": self.model.predict_proba(features)[0].tolist()}
