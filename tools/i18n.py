#!/usr/bin/python3
"""Translations of the plugin's user-visible strings (standard library only).

    python3 tools/i18n.py update          extract the strings and merge them into every i18n/earthgptx_*.ts
    python3 tools/i18n.py check           exit 1, listing them, when a string lacks a finished translation
    python3 tools/i18n.py new LANG        start i18n/earthgptx_LANG.ts (LANG as in "de" or "pt_BR")
    python3 tools/i18n.py compile [DIR]   lrelease every .ts into DIR/earthgptx_*.qm (default: i18n/)

What is extracted, from plugin/**/*.py, with the ``ast`` module:
  * ``tr("literal")`` - a call of a function named ``tr`` whose first argument is a string constant
    (adjacent literals count: ``tr("a " "b")`` is "a b"); ``tr(variable)``, f-strings, ``+`` and
    ``self.tr(...)`` (a QObject method, whose context is the class name) are not;
  * ``QT_TRANSLATE_NOOP("EarthGPTX", "literal")`` - marks a string that is stored first and given to
    ``tr()`` later (the context may be a module-level name bound to the string, such as TR_CONTEXT).

Merging keeps the translation of every source still in the code, adds new sources as
``<translation type="unfinished"/>`` and marks sources no longer in the code ``type="vanished"``
(kept with their translation, without locations, at the end, so that a string that comes back gets
its translation back; lrelease leaves vanished messages out of the .qm). A vanished source that was
never translated is removed. Delete vanished messages by hand when they are no longer wanted. Messages are ordered by where
each string first appears (file, then line); a string used in several places is one message with
several <location>s. The output is deterministic UTF-8.
"""

from __future__ import annotations

import ast
import glob
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIR = "plugin"
I18N_DIR = "i18n"
CONTEXT = "EarthGPTX"
TS_PREFIX = "earthgptx_"
LRELEASE_CANDIDATES = ("/usr/lib/qt5/bin/lrelease", "/usr/lib/x86_64-linux-gnu/qt5/bin/lrelease")

Location = Tuple[str, int]  # (path relative to ROOT, posix separators; line)


@dataclass
class Extraction:
    """Every translatable string with where it is used, and the tr() calls that could not be read."""

    sources: Dict[str, List[Location]] = field(default_factory=dict)
    dynamic: List[Location] = field(default_factory=list)

    def add(self, text: str, location: Location) -> None:
        self.sources.setdefault(text, []).append(location)

    def ordered(self) -> List[Tuple[str, List[Location]]]:
        """(source, sorted locations), ordered by first location then text."""
        items = [(text, sorted(set(locations))) for text, locations in self.sources.items()]
        return sorted(items, key=lambda item: (item[1][0], item[0]))


def _string(node: ast.AST) -> Optional[str]:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _callee(node: ast.Call) -> str:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):  # QObject's self.tr() translates in the class's context: not ours
        return node.func.attr
    return ""


def _module_strings(tree: ast.Module) -> Dict[str, str]:
    """Module-level ``NAME = "literal"`` bindings (to read a context given by name)."""
    names: Dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and _string(node.value) is not None:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = _string(node.value)
    return names


def extract_file(path: str, relpath: str, into: Extraction) -> None:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    names = _module_strings(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = _callee(node)
        if callee == "tr" and isinstance(node.func, ast.Name) and node.args:
            text = _string(node.args[0])
            if text is None:
                into.dynamic.append((relpath, node.lineno))
            elif text:
                into.add(text, (relpath, node.lineno))
        elif callee in ("QT_TRANSLATE_NOOP", "QT_TRANSLATE_NOOP3") and len(node.args) >= 2:
            context_node, text = node.args[0], _string(node.args[1])
            context = _string(context_node)
            if context is None and isinstance(context_node, ast.Name):
                context = names.get(context_node.id)
            if context == CONTEXT and text:
                into.add(text, (relpath, node.lineno))


def extract(root: str = ROOT) -> Extraction:
    """The translatable strings of every .py file under ``root``/plugin."""
    result = Extraction()
    files = sorted(glob.glob(os.path.join(root, SOURCE_DIR, "**", "*.py"), recursive=True))
    for path in files:
        extract_file(path, os.path.relpath(path, root).replace(os.sep, "/"), result)
    result.dynamic.sort()
    return result


# -- .ts files ----------------------------------------------------------------------------------------

@dataclass
class Message:
    source: str
    translation: str = ""
    type: Optional[str] = "unfinished"  # None: finished; "unfinished", "vanished", "obsolete"
    locations: List[Location] = field(default_factory=list)
    comment: str = ""  # a translator's note (Linguist's <translatorcomment>)

    @property
    def finished(self) -> bool:
        return self.type is None and self.translation != ""


@dataclass
class TsFile:
    path: str
    language: str
    messages: Dict[str, Message] = field(default_factory=dict)
    attributes: Dict[str, str] = field(default_factory=dict)


def ts_files(root: str = ROOT) -> List[str]:
    return sorted(glob.glob(os.path.join(root, I18N_DIR, TS_PREFIX + "*.ts")))


def language_of(path: str) -> str:
    return os.path.basename(path)[len(TS_PREFIX):-len(".ts")]


def read_ts(path: str) -> TsFile:
    ts = TsFile(path, language_of(path))
    if not os.path.exists(path):
        return ts
    root = ET.parse(path).getroot()
    if root.tag != "TS":
        raise ValueError(f"{path}: not a Qt Linguist file (root element <{root.tag}>)")
    ts.attributes = dict(root.attrib)
    for context in root.findall("context"):
        name = context.findtext("name", "")
        if name != CONTEXT:
            print(f"{path}: context {name!r} is not {CONTEXT!r}; it is dropped", file=sys.stderr)
            continue
        for element in context.findall("message"):
            source = element.findtext("source", "")
            translation = element.find("translation")
            message = Message(source, "", "unfinished")
            if translation is not None:
                message.translation = translation.text or ""
                message.type = translation.get("type")
            message.comment = element.findtext("translatorcomment", "")
            ts.messages[source] = message
    return ts


def _esc(text: str, quote: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if quote:
        text = text.replace('"', "&quot;")
    # characters XML 1.0 cannot hold; lupdate writes them as <byte value="..."/>, which no string here needs
    if re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", text):
        raise ValueError(f"control character in a translatable string: {text!r}")
    return text


def render_ts(ts: TsFile, ordered: List[Message], root: str = ROOT) -> str:
    attributes = {"version": "2.1", "language": ts.language, "sourcelanguage": "en"}
    attributes.update({k: v for k, v in ts.attributes.items() if k in ("version", "language", "sourcelanguage")})
    header = " ".join(f'{k}="{_esc(v, True)}"' for k, v in attributes.items())
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<!DOCTYPE TS>", f"<TS {header}>", "<context>",
             f"    <name>{CONTEXT}</name>"]
    ts_dir = os.path.dirname(os.path.abspath(ts.path))
    for message in ordered:
        lines.append("    <message>")
        for relpath, line in message.locations:
            filename = os.path.relpath(os.path.join(root, relpath), ts_dir).replace(os.sep, "/")
            lines.append(f'        <location filename="{_esc(filename, True)}" line="{line}"/>')
        lines.append(f"        <source>{_esc(message.source)}</source>")
        if message.comment:
            lines.append(f"        <translatorcomment>{_esc(message.comment)}</translatorcomment>")
        type_attribute = f' type="{message.type}"' if message.type else ""
        if message.translation:
            lines.append(f"        <translation{type_attribute}>{_esc(message.translation)}</translation>")
        else:
            lines.append(f"        <translation{type_attribute}/>")
        lines.append("    </message>")
    lines += ["</context>", "</TS>", ""]
    return "\n".join(lines)


def merge(ts: TsFile, extraction: Extraction) -> Tuple[List[Message], Dict[str, int]]:
    """The messages of ``ts`` brought up to date with ``extraction``, and counts of what changed."""
    counts = {"new": 0, "vanished": 0, "revived": 0}
    current: List[Message] = []
    for source, locations in extraction.ordered():
        old = ts.messages.get(source)
        if old is None:
            message = Message(source, "", "unfinished", locations)
            counts["new"] += 1
        else:
            message = Message(source, old.translation, old.type, locations, old.comment)
            if old.type in ("vanished", "obsolete"):
                message.type = None
                counts["revived"] += 1
            if not message.translation:
                message.type = "unfinished"
        current.append(message)
    # a vanished source is kept only when it has a translation to give back
    gone = sorted((m for s, m in ts.messages.items() if s not in extraction.sources and m.translation),
                  key=lambda m: m.source)
    for message in gone:
        if message.type not in ("vanished", "obsolete"):
            counts["vanished"] += 1
        message.type = "vanished" if message.type != "obsolete" else "obsolete"
        message.locations = []
    return current + gone, counts


def update(root: str = ROOT) -> int:
    extraction = extract(root)
    paths = ts_files(root)
    if not paths:
        print(f"no {I18N_DIR}/{TS_PREFIX}*.ts yet: start one with `python3 tools/i18n.py new LANG`", file=sys.stderr)
        return 1
    for path in paths:
        ts = read_ts(path)
        messages, counts = merge(ts, extraction)
        text = render_ts(ts, messages, root)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        unfinished = sum(1 for m in messages if m.type == "unfinished")
        print(f"{os.path.relpath(path, root)}: {len(extraction.sources)} strings, {counts['new']} new, "
              f"{counts['vanished']} vanished, {counts['revived']} back, {unfinished} to translate")
    _report_dynamic(extraction)
    return 0


def _report_dynamic(extraction: Extraction) -> None:
    if extraction.dynamic:
        print(f"note: {len(extraction.dynamic)} tr() call(s) of a non-literal are not extracted; the strings they "
              'receive must be marked where they are written, with QT_TRANSLATE_NOOP("EarthGPTX", "...")',
              file=sys.stderr)
        for relpath, line in extraction.dynamic:
            print(f"  {relpath}:{line}", file=sys.stderr)


PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def placeholders(text: str) -> List[str]:
    return sorted(PLACEHOLDER.findall(text.replace("{{", "").replace("}}", "")))


def problems(root: str = ROOT) -> List[str]:
    """One line per string without a finished translation (or whose placeholders differ), per .ts."""
    extraction = extract(root)
    found: List[str] = []
    paths = ts_files(root)
    if not paths:
        return [f"no {I18N_DIR}/{TS_PREFIX}*.ts file"]
    for path in paths:
        name = os.path.relpath(path, root)
        ts = read_ts(path)
        for source, locations in extraction.ordered():
            where = f"{locations[0][0]}:{locations[0][1]}"
            message = ts.messages.get(source)
            if message is None or not message.finished:
                state = "missing (run update)" if message is None else (message.type or "empty")
                found.append(f"{name}: {where}: {state}: {source!r}")
            elif placeholders(message.translation) != placeholders(source):
                found.append(f"{name}: {where}: placeholders {placeholders(message.translation)} in the "
                             f"translation, {placeholders(source)} in {source!r}")
    return found


def check(root: str = ROOT) -> int:
    found = problems(root)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} string(s) without a usable translation; run `python3 tools/i18n.py update`, "
              f"translate them in {I18N_DIR}/{TS_PREFIX}*.ts (Qt Linguist or a text editor), then check again",
              file=sys.stderr)
        return 1
    print(f"all {len(extract(root).sources)} strings translated in {len(ts_files(root))} file(s)")
    return 0


def new(language: str, root: str = ROOT) -> int:
    if not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", language):
        print(f"{language!r} is not a language code such as de or pt_BR", file=sys.stderr)
        return 2
    path = os.path.join(root, I18N_DIR, f"{TS_PREFIX}{language}.ts")
    if os.path.exists(path):
        print(f"{path} exists already", file=sys.stderr)
        return 1
    ts = TsFile(path, language)
    messages, _ = merge(ts, extract(root))
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(render_ts(ts, messages, root))
    print(f"{os.path.relpath(path, root)}: {len(messages)} strings to translate")
    return 0


def find_lrelease() -> Optional[str]:
    """Qt 5's lrelease (Debian: qttools5-dev-tools), or None."""
    for candidate in LRELEASE_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("lrelease-qt5") or shutil.which("lrelease")


def compile_all(out_dir: Optional[str] = None, root: str = ROOT) -> int:
    lrelease = find_lrelease()
    if lrelease is None:
        print("lrelease not found: install Qt's linguist tools (Debian: apt-get install qttools5-dev-tools)",
              file=sys.stderr)
        return 1
    out_dir = out_dir or os.path.join(root, I18N_DIR)
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ, QT_SELECT="5")  # /usr/bin/lrelease is qtchooser's wrapper
    for path in ts_files(root):
        target = os.path.join(out_dir, os.path.basename(path)[:-3] + ".qm")
        result = subprocess.run([lrelease, "-silent", path, "-qm", target], env=env, capture_output=True, text=True)
        if result.returncode != 0 or not os.path.exists(target):
            print(f"lrelease failed on {path}:\n{result.stdout}{result.stderr}", file=sys.stderr)
            return 1
        print(f"{os.path.relpath(target, root) if target.startswith(root) else target}")
    return 0


def main(argv: List[str]) -> int:
    if len(argv) == 1 and argv[0] == "update":
        return update()
    if len(argv) == 1 and argv[0] == "check":
        return check()
    if len(argv) == 2 and argv[0] == "new":
        return new(argv[1])
    if len(argv) in (1, 2) and argv[0] == "compile":
        return compile_all(argv[1] if len(argv) == 2 else None)
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
