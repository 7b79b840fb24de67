"""What one request to the served model may ask for, enforced inside MLflow's scoring server.

``mlflow models serve`` runs MLflow's app (``mlflow.pyfunc.scoring_server``, MLflow 3.17): it reads the
whole request body, decodes the JSON (a body that is not JSON used to come back whole inside the
400's message, and a deeply nested one was a 500 from a ``RecursionError``), builds one array and
calls the model on a thread that goes on after the server's 60 s timeout has answered 504 (1024
crops held 7.4 GB). MLflow offers no setting for any of this. The model's own code runs in that
process first, while the app module is being imported (the pyfunc model's ``load_context``);
:func:`install_in_scoring_server` then wraps the scoring server's ``invocations`` function, which the
app looks up on each request, with :func:`limited_invocations`:

- a body over ``max_request_mb`` is a 413 naming the limit, before any parsing;
- a JSON body is decoded here: not JSON is a 400 that says where it stops being JSON (never the body);
  nesting too deep for the decoder, or a number too long to convert, is a 400 too (they were 500s);
- more crops than ``max_batch`` is a 413 naming the limit, before any array is built;
- everything else goes on to MLflow's own handling (the signature's checks are 400s naming the problem).

The model also runs any batch ``max_batch`` crops at a time, so that in-process use
(``load_model(...).predict``) stays within the memory of one such batch. The body itself is read by
MLflow's app before any of this runs: a proxy in front of the server (nginx's ``client_max_body_size``)
is what bounds a body larger than the server's memory (docs/serving.md).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_BATCH_ENV = "PARE_SERVING_MAX_BATCH"
MAX_REQUEST_MB_ENV = "PARE_SERVING_MAX_REQUEST_MB"
SERVER_APP_MODULE = "mlflow.pyfunc.scoring_server.app"
"""The module ``mlflow models serve`` has uvicorn import; the model is loaded while it is being imported."""


@dataclass(frozen=True)
class ServingLimits:
    """The limits of one request; each is read from its environment variable when the server loads the model."""

    max_batch: int = 16
    """Most crops one request may hold (``PARE_SERVING_MAX_BATCH``): a batch of 16 HRNet-W32 crops took 28 s on a
    loaded 2-core CPU (docs/benchmarks.md, export), under MLflow's 60 s request timeout
    (``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT``); raise it with a GPU."""

    max_request_mb: float = 32.0
    """Largest request body in MB (``PARE_SERVING_MAX_REQUEST_MB``): 16 crops of 224 x 224 as JSON integers are about
    13 MB."""

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1e6)

    @classmethod
    def from_environment(cls) -> ServingLimits:
        """The defaults, with the environment's values where set; a value that is not a positive number raises."""
        defaults = cls()
        batch = int(_positive(MAX_BATCH_ENV, int, defaults.max_batch))
        return cls(batch, float(_positive(MAX_REQUEST_MB_ENV, float, defaults.max_request_mb)))


def _positive(name: str, kind: type, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = 0
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name}={text!r} must be a positive {'whole ' if kind is int else ''}number")
    return value


def batch_size(request: Any) -> int:
    """Crops in a decoded request (``inputs`` / ``instances`` lists, ``dataframe_split`` / ``dataframe_records``); 0 when
    it has another form (MLflow refuses those with its own message)."""
    if not isinstance(request, dict):
        return 0
    for key in ("inputs", "instances", "dataframe_records"):
        if isinstance(request.get(key), list):
            return len(request[key])
    split = request.get("dataframe_split")
    return len(split["data"]) if isinstance(split, dict) and isinstance(split.get("data"), list) else 0


def _refusal(status: int, message: str):
    from mlflow.pyfunc.scoring_server import InvocationsResponse

    code = "REQUEST_LIMIT_EXCEEDED" if status == 413 else "BAD_REQUEST"
    return InvocationsResponse(json.dumps({"error_code": code, "message": message}), status, "application/json")


SEND = 'send JSON such as {"inputs": CROPS}, CROPS a list of S x S x 3 lists of integers 0..255'


def _decoded(data: bytes | str) -> tuple[Any, str]:
    """(the decoded JSON request, '') or (None, why the body is refused): not UTF-8, not JSON, nested too deep, a
    number too long."""
    try:
        return json.loads(data), ""
    except RecursionError:
        return None, f"the request nests arrays or objects too deeply to decode; {SEND}"
    except UnicodeDecodeError as error:
        return None, f"the request body is not UTF-8 text (byte {error.start}); {SEND}"
    except json.JSONDecodeError as error:
        return (
            None,
            f"the request body is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); {SEND}",
        )
    except ValueError as error:  # e.g. a number of more digits than Python converts (sys.get_int_max_str_digits)
        return None, f"the request body is not JSON this server decodes ({str(error)[:200]}); {SEND}"


def limited_invocations(invocations: Callable, limits: ServingLimits) -> Callable:
    """``invocations`` (MLflow's ``(data, content_type, model, input_schema) -> InvocationsResponse``) behind the
    limits (see the module docstring)."""

    def limited(data, content_type, model, input_schema):
        if len(data) > limits.max_request_bytes:
            return _refusal(
                413,
                f"the request body is {len(data):,} bytes, more than the {limits.max_request_bytes:,} this server takes "
                f"({MAX_REQUEST_MB_ENV}={limits.max_request_mb:g}); send fewer crops per request",
            )
        if (content_type or "").split(";")[0].strip().lower() != "application/json":
            return invocations(data, content_type, model, input_schema)
        request, problem = _decoded(data)
        if problem:
            return _refusal(400, problem)
        if not isinstance(request, dict):  # MLflow's own message says what it takes, without the body
            return invocations(data, content_type, model, input_schema)
        if batch_size(request) > limits.max_batch:
            return _refusal(
                413,
                f"the request holds {batch_size(request)} crops, more than the {limits.max_batch} this server takes "
                f"({MAX_BATCH_ENV}={limits.max_batch}); split it into several requests",
            )
        return invocations(request, content_type, model, input_schema)  # MLflow takes a decoded dict as it is

    limited.pare_limits = limits  # type: ignore[attr-defined]
    return limited


def install_in_scoring_server(limits: ServingLimits) -> bool:
    """Put the limits in front of MLflow's scoring server when this process is one (its app module is being
    imported, which is when ``mlflow models serve`` loads the model); whether they were installed."""
    if SERVER_APP_MODULE not in sys.modules:
        return False
    from mlflow.pyfunc import scoring_server

    current = scoring_server.invocations
    original = getattr(current, "pare_original", current)
    limited = limited_invocations(original, limits)
    limited.pare_original = original  # type: ignore[attr-defined]
    scoring_server.invocations = limited
    return True
