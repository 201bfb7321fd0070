"""One configuration story: ROS parameter files, ``-p node.name=value`` flags and the runner's
own flags all end up as the same per-node parameters, checked against each node's defaults."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from moodstream_common.parameters import Spec, defaults


@functools.cache
def node_specs() -> dict[str, Mapping[str, Spec]]:
    """Each node's parameter specifications (default, description, allowed values), by node name."""
    # The node modules import rclpy: only when a parameter is looked up, so that commands
    # without ROS (`moodstream serve`, `history`) start without it.
    from moodstream_bridge.bridge_node import SPECS as BRIDGE
    from moodstream_bridge.console_node import SPECS as CONSOLE
    from moodstream_capture.node import SPECS as CAPTURE
    from moodstream_classify.node import SPECS as CLASSIFY
    from moodstream_common.lifecycle import LIFECYCLE_SPECS
    from moodstream_detect.node import SPECS as DETECT
    from moodstream_openmv.node import SPECS as OPENMV

    stages = {"capture": CAPTURE, "detect": DETECT, "classify": CLASSIFY, "openmv": OPENMV, "bridge": BRIDGE}
    return {**{node: {**specs, **LIFECYCLE_SPECS} for node, specs in stages.items()}, "console": CONSOLE}


@functools.cache
def node_defaults() -> dict[str, Mapping[str, Any]]:
    """Each node's parameter defaults, by node name."""
    return {node: defaults(specs) for node, specs in node_specs().items()}


def __getattr__(name: str):
    """``NODE_DEFAULTS``: each node's parameter defaults by node name, loaded on first use."""
    if name == "NODE_DEFAULTS":
        return node_defaults()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

Overrides = dict[str, dict[str, Any]]


class ConfigError(ValueError):
    """A parameter name or value that no node accepts."""


def coerce(node: str, name: str, value: Any) -> Any:
    """``value`` as the type of the parameter's default (ROS refuses a changed type), checked
    against the parameter's specification as the node checks it."""
    value = _as_type(node, name, value)
    reason = node_specs()[node][name].check(value)
    if reason:
        raise ConfigError(f"{node}.{name} {reason}")
    return value


def _as_type(node: str, name: str, value: Any) -> Any:
    defaults = node_defaults().get(node)
    if defaults is None:
        raise ConfigError(f"unknown node {node!r}; nodes: {', '.join(node_defaults())}")
    if name not in defaults:
        raise ConfigError(f"node {node} has no parameter {name!r}; it has: {', '.join(defaults)}")
    default = defaults[name]
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{node}.{name} must be a {type(default).__name__}, got {value!r}") from None


def load_params_file(path: str | Path) -> Overrides:
    """Per-node parameters from a ROS 2 parameters YAML file (keys like ``/**/detect`` or ``detect``)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ConfigError(f"cannot read parameters file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"parameters file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"parameters file {path} must map node names to ros__parameters")
    out: Overrides = {}
    for key, section in data.items():
        node = str(key).rstrip("/").split("/")[-1]
        params = (section or {}).get("ros__parameters") if isinstance(section, dict) else None
        if not isinstance(params, dict):
            raise ConfigError(f"{path}: section {key!r} has no ros__parameters mapping")
        if node == "**":  # every node: the runner takes its policy (other names belong to no node here)
            for name, value in (params.get("policy") or {}).items():
                for target in policy_nodes(name):
                    out.setdefault(target, {})[f"policy.{name}"] = coerce(target, f"policy.{name}", value)
            continue
        if node not in node_defaults():
            continue  # parameters of nodes the runner does not start (e.g. a bridge)
        for name, value in _flatten(params).items():
            out.setdefault(node, {})[name] = coerce(node, name, value)
    return out


def _flatten(params: dict, prefix: str = "") -> dict:
    """Nested YAML (``policy: {purpose: x}``) as ROS names (``policy.purpose``)."""
    flat = {}
    for name, value in params.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def policy_nodes(name: str) -> list[str]:
    """The nodes that declare ``policy.<name>`` (every node that handles emotions)."""
    return [node for node, specs in node_specs().items() if f"policy.{name}" in specs]


def parse_assignments(assignments: Iterable[str]) -> Overrides:
    """``["detect.scale_factor=1.1", "policy.purpose=...", ...]`` -> overrides; ``policy.NAME``
    sets ``policy.NAME`` of every node that handles emotions, as the YAML's ``/**`` section does."""
    out: Overrides = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        node, dot, name = key.partition(".")
        if not sep or not dot:
            raise ConfigError(f"expected NODE.PARAM=VALUE (e.g. detect.downscale=0.5), got {item!r}")
        parsed = yaml.safe_load(value) if value else ""
        if node == "policy":
            if not policy_nodes(name):
                raise ConfigError(f"there is no policy.{name}; the policy has: "
                                  f"{', '.join(k for k in node_specs()['bridge'] if k.startswith('policy.'))}")
            for target in policy_nodes(name):
                out.setdefault(target, {})[f"policy.{name}"] = coerce(target, f"policy.{name}", parsed)
            continue
        out.setdefault(node, {})[name] = coerce(node, name, parsed)
    return out


def merge(*layers: Overrides) -> Overrides:
    """Later layers win."""
    out: Overrides = {}
    for layer in layers:
        for node, params in layer.items():
            out.setdefault(node, {}).update(params)
    return out


def markdown_reference() -> str:
    """Every node's parameters as Markdown: docs/parameters.md (``moodstream params --markdown``)."""
    lines = ["# Parameters", "",
             "Generated from the nodes' parameter specifications by `moodstream params --markdown`; a test",
             "keeps it in step. *live*: a change applies from the next frame (`ros2 param set`);",
             "*restart*: the parameter is read-only while the node runs.", ""]
    for node, specs in node_specs().items():
        lines += [f"## {node}", "", "| parameter | default | allowed | change | meaning |",
                  "| --- | --- | --- | --- | --- |"]
        for name, spec in specs.items():
            default = spec.default if not isinstance(spec.default, bool) else str(spec.default).lower()
            quoted = isinstance(spec.default, str) and (not default or default.isdigit())
            default = f'`"{default}"`' if quoted else f"`{default}`"
            change = "restart" if spec.read_only else "live"
            lines.append(f"| `{name}` | {default} | {spec.allowed()} | {change} | {spec.description} |")
        lines.append("")
    return "\n".join(lines)
