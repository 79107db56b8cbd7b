"""The plugin's translations: loads ``i18n/earthgptx_<locale>.qm`` for the QGIS user's locale.

The plugin object calls ``install_translator`` before it builds any widget (so that ``tr()`` finds
the translations) and ``remove_translator`` on unload. The .qm files are compiled from the .ts
sources by ``make translations`` (see i18n/README.md); without one for the locale, the plugin stays
in English.
"""

from __future__ import annotations

import os
from typing import List, Optional

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QCoreApplication, QLocale, QTranslator

I18N_DIR = "i18n"
QM_PREFIX = "earthgptx_"

#: installed translators: QCoreApplication does not own them, so they must stay referenced
_installed: List[QTranslator] = []


def user_locale() -> str:
    """QGIS's locale (QgsSettings "locale/userLocale", which QGIS keeps in step with its interface
    language), else the system's, as "fr_FR" or "fr"."""
    value = QgsSettings().value("locale/userLocale", "")
    locale = str(value).strip() if value else ""
    return (locale or QLocale.system().name()).replace("-", "_")


def qm_candidates(plugin_dir: str, locale: str) -> List[str]:
    """The .qm files to try, most specific first: earthgptx_fr_FR.qm, then earthgptx_fr.qm."""
    names = [locale]
    language = locale.split("_")[0]
    if language and language != locale:
        names.append(language)
    return [os.path.join(plugin_dir, I18N_DIR, f"{QM_PREFIX}{name}.qm") for name in names if name]


def install_translator(plugin_dir: str, locale: Optional[str] = None) -> Optional[QTranslator]:
    """Installs the translation of ``plugin_dir`` (the folder holding i18n/) for ``locale`` (default:
    the QGIS user's) on the application and returns it, or None when there is none for that locale."""
    for path in qm_candidates(plugin_dir, locale or user_locale()):
        if not os.path.isfile(path):
            continue
        translator = QTranslator()
        if translator.load(path) and QCoreApplication.installTranslator(translator):
            _installed.append(translator)
            return translator
    return None


def remove_translator(translator: Optional[QTranslator]) -> None:
    """Undoes ``install_translator`` (None is accepted, and a translator removed twice is fine)."""
    if translator is None:
        return
    QCoreApplication.removeTranslator(translator)
    if translator in _installed:
        _installed.remove(translator)
