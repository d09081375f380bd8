"""The file MLflow runs to build the pyfunc model when it loads it (models from code)."""

from mlflow.models import set_model

from pneumogan.serve.mlflow_model import ClassifierModel

set_model(ClassifierModel())
