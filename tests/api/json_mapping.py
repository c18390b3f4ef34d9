#!/usr/bin/env python3
"""Reads what license-facade wrote with the reference proto3 JSON parser.

    PYTHONPATH=clients/python/src python3 tests/api/json_mapping.py DIR

Each file in DIR is one REST body or change-feed event, named `<n>.<Message>.json`
(tests/api/json_mapping.rs writes them). Each is parsed with the Python protobuf
runtime's `json_format.Parse` into `licensefacade.v1.<Message>`, unknown fields
refused, and written back with `MessageToDict` (fields without presence always
printed, as the service writes them): the result must be the very same JSON. A
difference means the service's JSON is not what the proto3 JSON mapping writes (a
timestamp offset other than Z, a 64-bit integer as a number, a field name, ...).
Exits 1 naming every file that differs.
"""

import json
import pathlib
import sys

from google.protobuf import json_format

from licensefacade.v1 import license_service_pb2 as pb


def differences(ours, theirs, path="$"):
    """The JSON paths where two decoded documents differ, with both values."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = []
        for key in sorted(set(ours) | set(theirs)):
            if key not in theirs:
                found.append(f"{path}.{key}: the service wrote {json.dumps(ours[key])}, protobuf omits it")
            elif key not in ours:
                found.append(f"{path}.{key}: protobuf writes {json.dumps(theirs[key])}, the service omitted it")
            else:
                found += differences(ours[key], theirs[key], f"{path}.{key}")
        return found
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        found = []
        for i, (a, b) in enumerate(zip(ours, theirs)):
            found += differences(a, b, f"{path}[{i}]")
        return found
    if ours != theirs or type(ours) is not type(theirs):
        return [f"{path}: the service wrote {json.dumps(ours)}, protobuf writes {json.dumps(theirs)}"]
    return []


def main(directory):
    files = sorted(pathlib.Path(directory).glob("*.json"))
    if not files:
        print(f"no bodies in {directory}", file=sys.stderr)
        return 1
    failed = []
    for path in files:
        name = path.name.split(".")[-2]
        text = path.read_text(encoding="utf-8")
        try:
            message = json_format.Parse(text, getattr(pb, name)(), ignore_unknown_fields=False)
        except json_format.ParseError as error:
            failed.append(f"{path.name}: the reference parser refuses it: {error}")
            continue
        written = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
        found = differences(json.loads(text), written)
        if found:
            failed.append(f"{path.name}:\n    " + "\n    ".join(found))
    for failure in failed:
        print(failure, file=sys.stderr)
    print(f"proto3 JSON: {len(files) - len(failed)} of {len(files)} bodies read and written back unchanged")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
