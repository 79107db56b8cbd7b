"""Translations: every tr() string of the plugin has a French translation (this fails, on purpose,
whenever a string is added without one: run `python3 tools/i18n.py update` and translate it in
i18n/earthgptx_fr.ts); the extractor and the .ts merge; the .ts compiles with lrelease and QGIS's
locale picks the French .qm at run time."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QCoreApplication, QTranslator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "i18n.py")
FR_TS = os.path.join(ROOT, "i18n", "earthgptx_fr.ts")
CONTEXT = "EarthGPTX"


def load(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


tool = load("earthgptx_i18n_tool", TOOL)
runtime = load("earthgptx_plugin_i18n", os.path.join(ROOT, "plugin", "i18n.py"))


def lrelease() -> str:
    path = tool.find_lrelease()
    if path is None:
        pytest.fail("lrelease not found (neither on PATH nor /usr/lib/qt5/bin/lrelease): install Qt's linguist "
                    "tools, `apt-get install qttools5-dev-tools` (the Makefile's system-deps does)")
    return path


def compile_ts(ts: str, qm: str) -> None:
    result = subprocess.run([lrelease(), ts, "-qm", qm], env=dict(os.environ, QT_SELECT="5"),
                            capture_output=True, text=True)
    assert result.returncode == 0 and os.path.isfile(qm), result.stdout + result.stderr


def test_every_plugin_string_has_a_french_translation():
    result = subprocess.run([sys.executable, TOOL, "check"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, (
        "strings without a French translation - run `python3 tools/i18n.py update`, translate them in "
        "i18n/earthgptx_fr.ts, then `python3 tools/i18n.py check`:\n" + result.stdout + result.stderr)


def test_extractor_finds_the_plugin_strings():
    extraction = tool.extract(ROOT)
    assert "Ask" in extraction.sources
    assert any(path == "plugin/dock.py" for path, _ in extraction.sources["Ask"])
    # strings marked where they are written, given to tr() later
    assert "Upgrade pip" in extraction.sources
    # the strings .format() fills keep their placeholders
    assert "Exported to {0}" in extraction.sources


def test_extractor_reads_only_literal_tr_calls(tmp_path):
    (tmp_path / "plugin" / "sub").mkdir(parents=True)
    (tmp_path / "plugin" / "a.py").write_text(
        'x = tr("Hello & <world>")\n'
        "y = tr('Stop')\n"
        "z = tr(x)\n"
        'w = tr(f"no {x}")\n'
        'v = tr("a " + x)\n'
        'u = tr("Joined " "literal").format(1)\n'
        'q = self.tr("Class context")\n'
        'e = tr("")\n', encoding="utf-8")
    (tmp_path / "plugin" / "sub" / "b.py").write_text(
        'CTX = "EarthGPTX"\n'
        'A = QT_TRANSLATE_NOOP(CTX, "Marked {0}")\n'
        'B = QT_TRANSLATE_NOOP("Other", "Not ours")\n'
        'C = tr("Stop")\n', encoding="utf-8")
    extraction = tool.extract(str(tmp_path))
    assert extraction.ordered() == [
        ("Hello & <world>", [("plugin/a.py", 1)]),
        ("Stop", [("plugin/a.py", 2), ("plugin/sub/b.py", 4)]),
        ("Joined literal", [("plugin/a.py", 6)]),
        ("Marked {0}", [("plugin/sub/b.py", 2)]),
    ]
    assert extraction.dynamic == [("plugin/a.py", 3), ("plugin/a.py", 4), ("plugin/a.py", 5)]


def test_update_keeps_translations_adds_new_and_marks_vanished(tmp_path):
    plugin, i18n = tmp_path / "plugin", tmp_path / "i18n"
    plugin.mkdir()
    i18n.mkdir()
    (plugin / "a.py").write_text('a = tr("Kept & <b>")\nb = tr("Gone")\nc = tr("Never translated")\n', encoding="utf-8")
    assert tool.new("fr", str(tmp_path)) == 0
    ts = i18n / "earthgptx_fr.ts"
    text = ts.read_text(encoding="utf-8")
    for source, translation in (("Kept &amp; &lt;b&gt;", "Gardé &amp; &lt;b&gt;"), ("Gone", "Parti")):
        old = f'<source>{source}</source>\n        <translation type="unfinished"/>'
        assert old in text
        text = text.replace(old, f"<source>{source}</source>\n        <translation>{translation}</translation>")
    ts.write_text(text, encoding="utf-8")

    (plugin / "a.py").write_text('n = tr("New")\na = tr("Kept & <b>")\n', encoding="utf-8")
    assert tool.update(str(tmp_path)) == 0
    first = ts.read_text(encoding="utf-8")
    messages = tool.read_ts(str(ts)).messages
    assert list(messages) == ["New", "Kept & <b>", "Gone"]  # by line, then the vanished
    assert (messages["New"].type, messages["New"].translation) == ("unfinished", "")
    assert (messages["Kept & <b>"].type, messages["Kept & <b>"].translation) == (None, "Gardé & <b>")
    assert (messages["Gone"].type, messages["Gone"].translation) == ("vanished", "Parti")
    assert '<location filename="../plugin/a.py" line="2"/>' in first
    assert tool.update(str(tmp_path)) == 0
    assert ts.read_text(encoding="utf-8") == first  # deterministic
    assert [line.split(": ")[-1] for line in tool.problems(str(tmp_path))] == ["'New'"]

    (plugin / "a.py").write_text('g = tr("Gone")\n', encoding="utf-8")  # a string that comes back
    tool.update(str(tmp_path))
    messages = tool.read_ts(str(ts)).messages
    assert (messages["Gone"].type, messages["Gone"].translation) == (None, "Parti")
    assert tool.problems(str(tmp_path)) == []


def test_check_rejects_translations_with_other_placeholders(tmp_path):
    (tmp_path / "plugin").mkdir()
    (tmp_path / "i18n").mkdir()
    (tmp_path / "plugin" / "a.py").write_text('a = tr("Could not create {file}: {error}")\n', encoding="utf-8")
    tool.new("fr", str(tmp_path))
    ts = tmp_path / "i18n" / "earthgptx_fr.ts"
    ts.write_text(ts.read_text(encoding="utf-8").replace(
        '<translation type="unfinished"/>', "<translation>Impossible de créer {fichier} : {error}</translation>"),
        encoding="utf-8")
    assert len(tool.problems(str(tmp_path))) == 1 and "placeholders" in tool.problems(str(tmp_path))[0]


def test_french_ts_is_well_formed_and_keeps_placeholders():
    root = ET.parse(FR_TS).getroot()
    assert root.tag == "TS" and root.get("language") == "fr"
    contexts = root.findall("context")
    assert [c.findtext("name") for c in contexts] == [CONTEXT]
    messages = {m.findtext("source"): m.find("translation") for m in contexts[0].findall("message")}
    assert messages["Ask"].text == "Demander"
    for source, translation in messages.items():
        if translation.get("type") is None:
            assert tool.placeholders(translation.text) == tool.placeholders(source), source
            assert source.endswith("...") == translation.text.endswith("..."), source


def test_compiled_french_translation_loads(tmp_path):
    qm = str(tmp_path / "earthgptx_fr.qm")
    compile_ts(FR_TS, qm)
    translator = QTranslator()
    assert translator.load(qm)
    assert translator.translate(CONTEXT, "Ask") == "Demander"
    assert translator.translate(CONTEXT, "Exported to {0}").format("a.gpkg") == "Exporté vers a.gpkg"
    assert translator.translate("OtherContext", "Ask") == ""


@pytest.fixture
def user_locale():
    """Sets QGIS's "locale/userLocale" for a test and puts the previous value back after it."""
    settings = QgsSettings()
    had, previous = settings.contains("locale/userLocale"), settings.value("locale/userLocale")

    def set_locale(value: str) -> None:
        QgsSettings().setValue("locale/userLocale", value)

    yield set_locale
    if had:
        QgsSettings().setValue("locale/userLocale", previous)
    else:
        QgsSettings().remove("locale/userLocale")


def test_install_translator_follows_the_qgis_locale(qgis_app, tmp_path, user_locale):
    (tmp_path / "i18n").mkdir()
    compile_ts(FR_TS, str(tmp_path / "i18n" / "earthgptx_fr.qm"))  # no fr_FR file: "fr" is the fallback
    assert QCoreApplication.translate(CONTEXT, "Stop") == "Stop"

    user_locale("fr_FR")
    translator = runtime.install_translator(str(tmp_path))
    try:
        assert isinstance(translator, QTranslator)
        assert QCoreApplication.translate(CONTEXT, "Stop") == "Arrêter"
    finally:
        runtime.remove_translator(translator)
    assert QCoreApplication.translate(CONTEXT, "Stop") == "Stop"
    runtime.remove_translator(translator)  # twice is harmless
    runtime.remove_translator(None)

    user_locale("de_DE")
    assert runtime.install_translator(str(tmp_path)) is None
    assert QCoreApplication.translate(CONTEXT, "Stop") == "Stop"


def test_install_translator_prefers_the_full_locale(qgis_app, tmp_path, user_locale):
    (tmp_path / "i18n").mkdir()
    compile_ts(FR_TS, str(tmp_path / "i18n" / "earthgptx_fr.qm"))
    canadian = tmp_path / "earthgptx_fr_CA.ts"
    canadian.write_text(open(FR_TS, encoding="utf-8").read().replace(">Arrêter<", ">Stopper<"), encoding="utf-8")
    compile_ts(str(canadian), str(tmp_path / "i18n" / "earthgptx_fr_CA.qm"))
    user_locale("fr_CA")
    translator = runtime.install_translator(str(tmp_path))
    try:
        assert QCoreApplication.translate(CONTEXT, "Stop") == "Stopper"
    finally:
        runtime.remove_translator(translator)
    assert runtime.qm_candidates("/p", "fr_FR") == [os.path.join("/p", "i18n", "earthgptx_fr_FR.qm"),
                                                     os.path.join("/p", "i18n", "earthgptx_fr.qm")]
