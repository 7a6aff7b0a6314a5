"""The model registry and ``build_model``, which checks names, options and the dataset's meta before building."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import TypeAdapter, ValidationError
from torch import nn

from largebatch.models.convnets import CNN1D, DigitsCNN
from largebatch.models.mlp import MLP
from largebatch.models.resnet import ResNet
from largebatch.models.tiny_bert import TinyBert

MODELS: dict[str, type[nn.Module]] = {
    "cnn1d": CNN1D,
    "digits_cnn": DigitsCNN,
    "tiny_bert": TinyBert,
    "resnet": ResNet,
    "mlp": MLP,
}


def _type_name(annotation: Any) -> str:
    """``int``, ``Sequence[int]``: an annotation as a user reads it."""
    if get_args(annotation):
        return str(annotation).replace("collections.abc.", "").replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def _typed_option(model: str, key: str, annotation: Any, value: Any) -> Any:
    """``value`` checked (and converted, e.g. a YAML list to a tuple) against the constructor's annotation."""
    if annotation is inspect.Parameter.empty:
        return value
    try:
        return TypeAdapter(annotation).validate_python(value)
    except ValidationError as err:
        reason = err.errors()[0]["msg"]
        raise ValueError(f"model '{model}': option '{key}' expects {_type_name(annotation)} (got {value!r}: "
                         f"{reason})") from None


def build_model(name: str, meta: Mapping[str, Any], **options: Any) -> nn.Module:
    """Build model ``name`` for a dataset described by ``meta`` (``Splits.meta``), with keyword ``options``.

    Raises ``ValueError`` for an unknown name or option (naming the allowed ones), for an option of the wrong
    type (naming the type the constructor declares), for invalid option values and
    when ``meta`` lacks what the model reads (e.g. ``num_classes`` and ``input_shape`` for classifiers).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    cls = MODELS[name]
    parameters = {p.name: p for p in inspect.signature(cls, eval_str=True).parameters.values()
                  if p.kind is p.KEYWORD_ONLY}
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise ValueError(f"model '{name}': unknown option '{unknown[0]}'; allowed: {', '.join(parameters)}")
    options = {key: _typed_option(name, key, parameters[key].annotation, value) for key, value in options.items()}
    missing = [key for key in cls.META_KEYS if key not in meta]
    if missing:
        raise ValueError(
            f"model '{name}' needs meta keys {', '.join(cls.META_KEYS)} (task {meta.get('task')!r} lacks "
            f"{', '.join(missing)})"
        )
    return cls(meta, **options)
