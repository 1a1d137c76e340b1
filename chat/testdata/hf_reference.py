#!/usr/bin/env python3
"""Checks the golden files against Jinja2 configured as transformers does.

This renders every case of cases.json the way transformers'
apply_chat_template does (ImmutableSandboxedEnvironment with trim_blocks and
lstrip_blocks, the loopcontrols extension, raise_exception, strftime_now, and
tojson as json.dumps(ensure_ascii=False)) and compares the result with
golden/<name>.txt, which `go test ./chat -run TestGolden -update` writes from
the Go engine. It needs only the jinja2 package:

    python3 chat/testdata/hf_reference.py          # check
    python3 chat/testdata/hf_reference.py -v       # show differences

It is a review tool, not part of go test.
"""
import datetime
import json
import os
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))


def environment(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return now.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(case):
    now = datetime.datetime.now()
    if case.get("now"):
        now = datetime.datetime.fromisoformat(case["now"].replace("Z", "+00:00"))
    src = open(os.path.join(HERE, case["template"] + ".jinja"), encoding="utf-8").read()
    ctx = dict(
        messages=case["messages"],
        tools=case.get("tools"),
        documents=None,
        add_generation_prompt=case["add_generation_prompt"],
        bos_token=case["bos_token"],
        eos_token=case["eos_token"],
    )
    ctx.update(case.get("extra", {}))
    try:
        return environment(now).from_string(src).render(**ctx)
    except jinja2.exceptions.TemplateError as e:
        if type(e) is jinja2.exceptions.TemplateError:  # raise_exception
            return "ERROR: " + str(e)
        raise


def main():
    verbose = "-v" in sys.argv
    cases = json.load(open(os.path.join(HERE, "cases.json"), encoding="utf-8"))
    bad = 0
    for case in cases:
        want = render(case)
        path = os.path.join(HERE, "golden", case["name"] + ".txt")
        got = open(path, encoding="utf-8", newline="").read() if os.path.exists(path) else None
        ok = got == want
        bad += not ok
        print(("ok  " if ok else "DIFF"), case["name"])
        if not ok and verbose:
            print("  jinja2:", repr(want))
            print("  golden:", repr(got))
    print(f"{len(cases) - bad}/{len(cases)} goldens match Jinja2 {jinja2.__version__}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
