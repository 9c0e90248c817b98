# Loaded (as sitecustomize) into SPDK's rpc.py by rpcpy-table.sh: when rpc.py parses its command
# line, print its parser's interface instead, as JSON: for each method, its arguments (flags,
# destination, kind, type, nargs, default, choices, help) and how rpc.py prints the result
# (print_json, print_dict, print_array, print, or nothing). This reads rpc.py's command-line
# surface; nothing of it is executed against a target.
import argparse
import inspect
import json
import re
import sys

_parse_args = argparse.ArgumentParser.parse_args


def _plain(v):
    return v if isinstance(v, (str, int, float, bool, type(None))) else None


def _describe(self, args=None, namespace=None):
    subs = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return _parse_args(self, args, namespace)
    sub = subs[0]
    helps = {c.dest: c.help for c in sub._choices_actions}
    out = {}
    for name, p in sub.choices.items():
        func = p._defaults.get('func')
        output = 'none'
        try:
            src = inspect.getsource(func) if func else ''
        except (OSError, TypeError):
            src = ''
        for mode, pattern in (('json', r'print_json\('), ('dict', r'print_dict\('),
                              ('array', r'print_array\('), ('print', r'(?<![_a-z])print\(')):
            if re.search(pattern, src):
                output = mode
                break
        params = []
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            t = getattr(a, 'type', None)
            params.append({
                'flags': list(a.option_strings),
                'dest': a.dest,
                'action': type(a).__name__.strip('_').replace('Action', ''),
                'type': getattr(t, '__name__', None) if t is not None else None,
                'nargs': a.nargs,
                'default': a.default if isinstance(a.default, list) else _plain(a.default),
                'const': _plain(a.const),
                'choices': list(a.choices) if a.choices else None,
                'required': a.required,
                'help': (a.help or '').strip() or None,
            })
        out[name] = {'help': helps.get(name), 'output': output, 'args': params}
    wanted = [n for n in sys.argv[1:] if n in out]
    json.dump({n: out[n] for n in (wanted or out)}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write('\n')
    sys.exit(0)


argparse.ArgumentParser.parse_args = _describe
