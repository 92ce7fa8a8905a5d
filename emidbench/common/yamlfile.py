"""YAML files read with their line numbers, so that an error names file:line: mappings
(LineMap) and lists (LineList) remember the line they start on, and a mapping the line
of each key. Used for shift suites and run configs."""

from __future__ import annotations

from pathlib import Path

import yaml

from emidbench.common.errors import UserError


class LineMap(dict):
    line = 0
    key_lines: dict


def kind(value) -> str:
    """What a YAML value is, in the writer's words (not our loader's class names)."""
    if value is None:
        return "empty"
    for types, word in ((bool, "true/false"), ((int, float), "a number"), (str, "a string"), (list, "a list")):
        if isinstance(value, types):
            return word
    return type(value).__name__


class LineList(list):
    line = 0


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and lists remember their (1-based) lines."""


def _construct_map(loader, node):
    loader.flatten_mapping(node)
    out = LineMap()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise UserError(f"{loader.where}:{key_node.start_mark.line + 1}: key {key!r} appears twice")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_list(loader, node):
    out = LineList(loader.construct_object(n, deep=True) for n in node.value)
    out.line = node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_list)


def read_yaml(path: Path, where: str):
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{where}: cannot read ({e})") from None
    loader = _LineLoader(text)
    loader.where = where
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise UserError(f"{where}{f':{mark.line + 1}' if mark else ''}: not valid YAML "
                        f"({getattr(e, 'problem', None) or e})") from None
    finally:
        loader.dispose()
