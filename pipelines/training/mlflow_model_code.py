"""The MLflow model's code (MLflow's "models from code"): logged as a file, run when the model is loaded.

Logging the model this way, instead of a pickled Python object, means loading it runs this
file's import of :class:`~pipelines.training.mlflow_model.PareMlflowModel` from the installed
package rather than unpickling arbitrary code; the body model folder comes in the model config.
"""

from mlflow.models import set_model

from pipelines.training.mlflow_model import PareMlflowModel

set_model(PareMlflowModel())
