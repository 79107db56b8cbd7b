"""Worker environment setup: the PyTorch build chosen per NVIDIA driver, the planned commands, the
pins agreeing with requirements.txt, the worker diagnostics (run for real in this venv), and the setup
dialog under QGIS running real commands through QProcess."""

import ast
import json
import importlib
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
SYSTEM_PYTHON = "/usr/bin/python3"


# -- the plugin package, imported as QGIS does (the repo root IS the plugin folder) ---------------
@pytest.fixture(scope="module")
def sp(plugin_package):
    """The setup plan (folders, base Python, steps)."""
    return importlib.import_module("earthgptx.plugin.setup.plan")


@pytest.fixture(scope="module")
def tc(plugin_package):
    """NVIDIA detection and the PyTorch build choice."""
    return importlib.import_module("earthgptx.plugin.setup.torch_choice")


@pytest.fixture(scope="module")
def req(plugin_package):
    return importlib.import_module("earthgptx.plugin.setup.requirements")


@pytest.fixture(scope="module")
def bs(plugin_package):
    return importlib.import_module("earthgptx.plugin.setup.dialog")


# -- nvidia-smi output and the PyTorch build ------------------------------------------------------
def test_parse_nvidia_smi_real_outputs(sp, tc):
    info = tc.parse_nvidia_smi("570.133.07, NVIDIA GeForce RTX 4090, 24564 MiB\n")
    assert info.driver_version == "570.133.07" and info.driver == (570, 133, 7)
    assert info.gpus == (tc.NvidiaGpu("NVIDIA GeForce RTX 4090", 24564, None),)
    two = tc.parse_nvidia_smi("580.82.07, NVIDIA H100 80GB HBM3, 81559 MiB, 9.0\n"
                              "580.82.07, NVIDIA H100 80GB HBM3, 81559 MiB, 9.0\n")
    assert len(two.gpus) == 2 and two.gpus[0].compute_capability == (9, 0)
    windows = tc.parse_nvidia_smi("572.16, NVIDIA GeForce RTX 3060 Laptop GPU, 6144 MiB, 8.6\r\n")
    assert windows.driver == (572, 16) and windows.gpus[0].memory_mib == 6144
    assert tc.parse_nvidia_smi("575.64.03, NVIDIA GB10, [N/A], 12.1").gpus[0].memory_mib is None
    for failure in ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure "
                    "that the latest NVIDIA driver is installed and running.\n", "No devices were found\n", "",
                    'Field "compute_cap" is not a valid field to query.\n'):
        assert tc.parse_nvidia_smi(failure) is None


SMI = {  # nvidia-smi --query-gpu=driver_version,name,memory.total[,compute_cap] --format=csv,noheader
    "ada_580": "580.82.07, NVIDIA GeForce RTX 4090, 24564 MiB, 8.9",
    "ada_575": "575.57.08, NVIDIA GeForce RTX 4070, 12282 MiB, 8.9",
    "blackwell_570": "570.133.07, NVIDIA GeForce RTX 5090, 32607 MiB, 12.0",
    "ampere_565": "565.57.01, NVIDIA GeForce RTX 3080, 10240 MiB, 8.6",
    "pascal_580": "580.82.07, NVIDIA GeForce GTX 1080, 8192 MiB, 6.1",
    "ampere_550": "550.163.01, NVIDIA RTX A4000, 16376 MiB, 8.6",
    "old_query_535": "535.247.01, Tesla T4, 15360 MiB",
    "old_470": "470.256.02, Tesla T4, 15109 MiB",
    "kepler_580": "580.82.07, Tesla K80, 11441 MiB, 3.7",
    "win_572": "572.16, NVIDIA GeForce RTX 3060, 12288 MiB, 8.6",
    "win_566": "566.36, NVIDIA GeForce RTX 2070, 8192 MiB, 7.5",
    "win_560_70": "560.70, NVIDIA GeForce RTX 2070, 8192 MiB, 7.5",
    "win_522": "522.06, NVIDIA GeForce RTX 2070, 8192 MiB, 7.5",
}


@pytest.mark.parametrize("smi, platform, build, reason", [
    ("ada_580", "linux", "cu130", "cuda"),
    ("ada_575", "linux", "cu128", "cuda"),
    ("blackwell_570", "linux", "cu128", "cuda"),
    ("ampere_565", "linux", "cu126", "cuda"),
    ("pascal_580", "linux", "cu126", "cuda"),        # cu128 and cu130 have no Pascal kernels
    ("ampere_550", "linux", "cu126", "cuda-compat"),  # CUDA 12 minor-version compatibility
    ("old_query_535", "linux", "cu126", "cuda-compat"),
    ("old_470", "linux", "cpu", "driver-too-old"),
    ("kepler_580", "linux", "cpu", "gpu-unsupported"),
    ("win_572", "win32", "cu128", "cuda"),
    ("win_566", "win32", "cu126", "cuda"),
    ("win_560_70", "win32", "cu126", "cuda-compat"),
    ("win_522", "win32", "cpu", "driver-too-old"),
])
def test_choose_torch_per_driver(sp, smi, platform, build, reason, tc):
    choice = tc.choose_torch(tc.parse_nvidia_smi(SMI[smi] + "\n"), platform, "x86_64")
    assert (choice.build, choice.reason_key) == (build, reason)
    assert choice.index_url == f"https://download.pytorch.org/whl/{build}" and choice.installable
    assert choice.device == ("cpu" if build == "cpu" else "cuda")
    assert choice.torch_requirements == (f"torch==2.14.1+{build}", f"torchvision==0.29.1+{build}")
    assert choice.reason and "{" not in choice.reason
    if reason == "driver-too-old":
        assert re.search(r"\d{3}\.\d+", choice.reason_args["minimum"])


@pytest.mark.parametrize("platform, machine, build, index, device, installable", [
    ("linux", "x86_64", "cpu", "https://download.pytorch.org/whl/cpu", "cpu", True),
    ("win32", "AMD64", "cpu", "https://download.pytorch.org/whl/cpu", "cpu", True),
    ("darwin", "arm64", "pypi", None, "mps", True),
    ("darwin", "x86_64", "pypi", None, "cpu", False),
])
def test_choose_torch_without_nvidia(sp, platform, machine, build, index, device, installable, tc, req):
    choice = tc.choose_torch(None, platform, machine)
    assert (choice.build, choice.index_url, choice.device, choice.installable) == (build, index, device, installable)
    assert choice.reason
    if build == "pypi":
        assert choice.torch_requirements == req.TORCH_REQUIREMENTS


def test_detect_nvidia(sp, tc):
    if shutil.which("nvidia-smi") is None:
        assert tc.detect_nvidia() is None  # no nvidia-smi on this machine

    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        assert kwargs["timeout"] > 0
        if "compute_cap" in argv[1]:  # a driver too old for that field
            return subprocess.CompletedProcess(argv, 6, 'Field "compute_cap" is not a valid field to query.\n', "")
        return subprocess.CompletedProcess(argv, 0, "535.247.01, Tesla T4, 15360 MiB\n", "")

    info = tc.detect_nvidia(run=run, smi="nvidia-smi", platform="linux")
    assert info.driver_version == "535.247.01" and info.gpus[0].name == "Tesla T4"
    assert [c[1] for c in calls] == ["--query-gpu=driver_version,name,memory.total,compute_cap",
                                     "--query-gpu=driver_version,name,memory.total"]
    assert all(c[2] == "--format=csv,noheader" for c in calls)

    def hang(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    assert tc.detect_nvidia(run=hang, smi="nvidia-smi", platform="linux") is None
    assert tc.find_nvidia_smi("darwin") is None
    win = tc.find_nvidia_smi("win32", which=lambda n: None, exists=lambda p: p.endswith(r"NVSMI\nvidia-smi.exe"))
    assert win == r"C:\Program Files\NVIDIA Corporation\NVSMI\nvidia-smi.exe"


# -- the steps ------------------------------------------------------------------------------------
def test_steps_create_outside_the_plugin_folder(sp, tmp_path, tc, req):
    venv = str(tmp_path / "profile" / "earthgptx" / "worker-venv")
    assert venv == sp.default_venv_dir(str(tmp_path / "profile"))
    choice = tc.choose_torch(tc.parse_nvidia_smi(SMI["blackwell_570"]), "linux", "x86_64")
    steps = sp.build_steps(venv, SYSTEM_PYTHON, choice, ROOT, "linux")
    assert [s.key for s in steps] == ["check-python", "create-venv", "upgrade-pip", "install-torch",
                                      "install-packages", "diagnostics"]
    python = os.path.join(venv, "bin", "python")
    by = {s.key: s for s in steps}
    assert by["create-venv"].argv == (SYSTEM_PYTHON, "-m", "venv", venv)
    assert by["upgrade-pip"].argv == (python, "-m", "pip", "install", "--upgrade", "pip")
    assert by["install-torch"].argv == (python, "-m", "pip", "install", "torch==2.14.1+cu128",
                                        "torchvision==0.29.1+cu128", "--index-url",
                                        "https://download.pytorch.org/whl/cu128")
    assert by["install-packages"].argv == (python, "-m", "pip", "install") + req.WORKER_REQUIREMENTS
    assert by["diagnostics"].argv == (python, "-m", "model_backend.commands.diagnostics")
    assert by["diagnostics"].env["PYTHONPATH"] == ROOT  # the folder holding model_backend/
    assert os.path.isdir(os.path.join(by["diagnostics"].env["PYTHONPATH"], "model_backend"))
    for step in steps:
        assert step.cwd == os.path.dirname(venv) and not sp.is_inside(step.cwd, ROOT)
        assert step.description
    assert not sp.is_inside(venv, ROOT)
    # the base Python check really runs
    r = subprocess.run(list(by["check-python"].argv), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "Python 3." in r.stdout


def test_steps_update_cpu_and_macos(sp, tmp_path, tc):
    venv = tmp_path / "worker-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    steps = sp.build_steps(str(venv), "", tc.choose_torch(None, "linux", "x86_64"), ROOT, "linux")
    assert [s.key for s in steps] == ["upgrade-pip", "install-torch", "install-packages", "diagnostics"]
    assert steps[1].argv[-2:] == ("--index-url", "https://download.pytorch.org/whl/cpu")
    assert "torch==2.14.1+cpu" in steps[1].argv
    mac = sp.build_steps("/Users/a/Library/Application Support/QGIS/QGIS3/profiles/default/earthgptx/worker-venv",
                         "/opt/homebrew/bin/python3", tc.choose_torch(None, "darwin", "arm64"),
                         "/Users/a/Library/Application Support/QGIS/QGIS3/profiles/default/python/plugins/earthgptx",
                         "darwin", update=False)
    torch_step = [s for s in mac if s.key == "install-torch"][0]
    assert "--index-url" not in torch_step.argv and "torch==2.14.1" in torch_step.argv
    assert mac[-1].argv[0].endswith("/worker-venv/bin/python")


def test_steps_windows_paths(sp, tc):
    profile = r"C:\Users\ana\AppData\Roaming\QGIS\QGIS3\profiles\default"
    venv = sp.default_venv_dir(profile, "win32")
    assert venv == profile + r"\earthgptx\worker-venv"
    assert sp.worker_python(venv, "win32") == venv + r"\Scripts\python.exe"
    assert sp.worker_python("/x/venv", "linux") == "/x/venv/bin/python"
    assert sp.worker_python("/x/venv", "darwin") == "/x/venv/bin/python"
    choice = tc.choose_torch(tc.parse_nvidia_smi(SMI["win_572"]), "win32", "AMD64")
    steps = sp.build_steps(venv, r"C:\Program Files\Python311\python.exe", choice,
                           profile + r"\python\plugins\earthgptx", "win32", update=False)
    assert steps[1].argv == (r"C:\Program Files\Python311\python.exe", "-m", "venv", venv)
    assert all(s.argv[0] == venv + r"\Scripts\python.exe" for s in steps[2:])
    assert steps[3].argv[-1] == "https://download.pytorch.org/whl/cu128"
    with pytest.raises(sp.SetupPlanError, match="outside the plugin folder"):  # case-insensitive paths
        sp.build_steps(profile.upper() + r"\PYTHON\plugins\earthgptx\venv", "py", choice,
                       profile + r"\python\plugins\earthgptx", "win32")


def test_steps_refused(sp, tmp_path, tc):
    cpu = tc.choose_torch(None, "linux", "x86_64")
    with pytest.raises(sp.SetupPlanError, match="outside the plugin folder"):
        sp.build_steps(os.path.join(ROOT, "worker-venv"), SYSTEM_PYTHON, cpu, ROOT, "linux")
    link = tmp_path / "link-to-plugin"
    link.symlink_to(ROOT, target_is_directory=True)
    with pytest.raises(sp.SetupPlanError, match="outside the plugin folder"):
        sp.build_steps(str(link / "venv"), SYSTEM_PYTHON, cpu, ROOT, "linux")
    with pytest.raises(sp.SetupPlanError, match="absolute"):
        sp.build_steps("worker-venv", SYSTEM_PYTHON, cpu, ROOT, "linux")
    with pytest.raises(sp.SetupPlanError, match="no Python found"):
        sp.build_steps(str(tmp_path / "v"), "", cpu, ROOT, "linux")
    with pytest.raises(sp.SetupPlanError, match="Intel Mac"):
        sp.build_steps(str(tmp_path / "v"), SYSTEM_PYTHON, tc.choose_torch(None, "darwin", "x86_64"), ROOT, "darwin")


def test_step_environment_drops_qgis_python_variables(sp):
    step = sp.diagnostics_step("/v/bin/python", ROOT)
    env = sp.step_environment({"PATH": "/usr/bin", "PYTHONHOME": "C:/OSGeo4W/apps/Python312",
                               "PYTHONPATH": "C:/OSGeo4W/apps/qgis/python", "VIRTUAL_ENV": "/x"}, step)
    assert env["PATH"] == "/usr/bin" and env["PYTHONPATH"] == ROOT and env["PYTHONUNBUFFERED"] == "1"
    assert "PYTHONHOME" not in env and "VIRTUAL_ENV" not in env
    assert "PYTHONPATH" not in sp.step_environment({"PYTHONPATH": "/q"}, sp.Step("x", "x", ("a",)))


def test_find_base_python(sp):
    assert sp.find_base_python("linux", which=lambda n: None, exists=lambda p: p == "/usr/bin/python3") == \
        "/usr/bin/python3"
    qgis = r"C:\OSGeo4W\apps\Python312\python.exe"
    store = r"C:\Users\a\AppData\Local\Microsoft\WindowsApps\python.exe"

    def run(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 0, qgis + "\n", "")

    which = {"py": r"C:\Windows\py.exe", "python": store, "python3": None}.get
    assert sp.find_base_python("win32", which=which, exists=lambda p: True, run=run) is None
    real = r"C:\Program Files\Python312\python.exe"
    assert sp.find_base_python("win32", which=which, exists=lambda p: True,
                               run=lambda a, **k: subprocess.CompletedProcess(a, 0, real + "\n", "")) == real
    assert sp.find_base_python("darwin", which=lambda n: "/Applications/QGIS.app/Contents/MacOS/bin/python3",
                               exists=lambda p: p.startswith("/Applications")) is None


def _requirement_pins(path):
    pins = {}
    for line in open(path, encoding="utf-8"):
        line = line.split("#")[0].strip()
        if line:
            name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", line).groups()
            pins[re.sub(r"[-_.]+", "-", name).lower()] = spec.replace(" ", "")
    return pins


def test_worker_pins_agree_with_requirements_txt(tc, req):
    pins = _requirement_pins(os.path.join(ROOT, "requirements.txt"))
    ours = {}
    for line in req.TORCH_REQUIREMENTS + req.WORKER_REQUIREMENTS:
        name, spec = re.match(r"([A-Za-z0-9_.\-]+)(.*)", line).groups()
        ours[name.lower()] = spec
    assert set(ours) >= {"torch", "torchvision", "transformers", "accelerate", "safetensors", "tokenizers",
                         "bitsandbytes", "pillow", "numpy", "rasterio", "pyproj", "shapely", "fiona", "jinja2"}
    for name, spec in ours.items():
        assert pins.get(name) == spec, (f"{name}: plugin/setup/requirements.py says {spec!r}, "
                                          f"requirements.txt {pins.get(name)!r}")
    torch_cu = tc.choose_torch(tc.parse_nvidia_smi(SMI["ada_580"]), "linux", "x86_64").torch_requirements
    assert [r.split("+")[0] for r in torch_cu] == list(req.TORCH_REQUIREMENTS)


def _imports(path):
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            yield from ((0, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""


def test_setup_modules_stay_light():
    """The plan (requirements, torch_choice, plan) is standard library only; the Qt parts use qgis.PyQt;
    the environment report imports only the standard library at module level (the probes import the rest)."""
    folder = os.path.join(ROOT, "plugin", "setup")
    for name in ("__init__", "requirements", "torch_choice", "plan"):
        for level, module in _imports(os.path.join(folder, name + ".py")):
            assert level == 1 or module.split(".")[0] in sys.stdlib_module_names or module == "__future__", module
    for name in ("runner", "dialog"):
        for level, module in _imports(os.path.join(folder, name + ".py")):
            top = module.split(".")[0]
            assert level == 1 or top in sys.stdlib_module_names or top in ("__future__", "qgis"), module
            assert not module.startswith("PyQt"), "use qgis.PyQt (Qt5 and Qt6)"
    for path in (os.path.join(ROOT, "model_backend", "worker", "environment.py"),
                 os.path.join(ROOT, "model_backend", "commands", "diagnostics.py")):
        for node in ast.parse(open(path, encoding="utf-8").read()).body:  # module level
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module] if not node.level else []
            else:
                continue
            assert all(n.split(".")[0] in sys.stdlib_module_names or n == "__future__" for n in names), names


# -- diagnostics, for real in this venv ------------------------------------------------------------
def _fake_hf_cache(root):
    repo = root / "models--tiny-org--tiny-model"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "blobs" / "aaaa").write_bytes(b"\0" * 3000)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit / "config.json").symlink_to("../../blobs/aaaa")
    return root


@pytest.fixture(scope="module")
def diagnostics_runs(tmp_path_factory):
    """``--json`` and the text form, run side by side with a Hugging Face cache holding one model."""
    cache = _fake_hf_cache(tmp_path_factory.mktemp("hf-cache"))
    env = dict(os.environ, HF_HUB_CACHE=str(cache), PYTHONPATH=ROOT)
    procs = [subprocess.Popen([VENV_PYTHON, "-m", "model_backend.commands.diagnostics"] + args, cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in (["--json"], [])]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    return {"json": outs[0][0], "text": outs[1][0], "cache": str(cache)}


def test_diagnostics_json(diagnostics_runs):
    report = json.loads(diagnostics_runs["json"])  # stdout is JSON only, whatever the imports print
    assert report["torch"]["status"] == "ok" and report["torch"]["version"].startswith("2.14.1")
    assert report["torch"]["cuda_available"] is False and report["torch"]["devices"] == []
    assert report["torch"]["cuda_build"]  # this venv has a CUDA build of torch
    assert report["python"]["executable"] and report["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    for name in ("bitsandbytes", "transformers", "accelerate", "rasterio", "pyproj", "shapely", "numpy"):
        assert report["packages"][name]["status"] == "ok" and report["packages"][name]["version"], name
    assert report["packages"]["bitsandbytes"]["version"] == "0.50.2"
    assert report["hf_cache"]["path"] == diagnostics_runs["cache"]
    assert report["hf_cache"]["repos"] == [{"repo_id": "tiny-org/tiny-model", "repo_type": "model",
                                            "size_bytes": 3000, "files": 1, "refs": ["main"]}]
    assert report["memory"]["available_bytes"] > 0
    assert report["model_backend"]["protocol"] == 1
    assert any("No GPU is usable" in f for f in report["findings"])


def test_diagnostics_text(diagnostics_runs):
    text = diagnostics_runs["text"]
    assert text.startswith("EarthGPT-X worker diagnostics")
    assert re.search(r"torch +2\.14\.1", text) and re.search(r"CUDA available +no", text)
    assert re.search(r"bitsandbytes +0\.50\.2", text) and "tiny-org/tiny-model" in text
    assert "Hugging Face cache " + diagnostics_runs["cache"] in text
    assert re.search(r"RAM +[\d.]+ GiB total", text)


def test_diagnostics_survive_broken_and_crashing_packages(tmp_path):
    """A package that raises on import is reported; one that kills the interpreter too (here torch,
    the first probed, so this stays fast)."""
    sys.path.insert(0, ROOT)
    try:
        from model_backend.worker import environment as diagnostics
    finally:
        sys.path.remove(ROOT)
    fake = tmp_path / "fake"
    (fake / "brokenpkg").mkdir(parents=True)
    (fake / "brokenpkg" / "__init__.py").write_text('raise ImportError("libgdal.so.99: cannot open shared object")')
    (fake / "torch").mkdir()
    (fake / "torch" / "__init__.py").write_text("import os\nos.abort()\n")
    sys.path.insert(0, str(fake))
    try:
        broken = diagnostics.probe_package("brokenpkg", "brokenpkg")
        assert broken["status"] == "error" and "libgdal.so.99" in broken["error"]
        assert diagnostics.probe_package("no_such_package_xyz", "no-such") == {"status": "missing"}
    finally:
        sys.path.remove(str(fake))
        sys.modules.pop("brokenpkg", None)
    env = dict(os.environ, PYTHONPATH=str(fake) + os.pathsep + ROOT, HF_HUB_CACHE=str(tmp_path / "none"))
    r = subprocess.run([VENV_PYTHON, "-m", "model_backend.commands.diagnostics", "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["torch"]["status"] == "error" and "while importing torch" in report["torch"]["error"]
    assert "signal" in report["torch"]["error"]
    assert report["packages"]["numpy"]["status"] == "unknown"
    assert report["hf_cache"]["exists"] is False
    assert any("PyTorch does not import" in f for f in report["findings"])
    assert "while importing torch" in diagnostics.format_text(report)


def test_diagnostics_cache_walk_and_arch(tmp_path):
    sys.path.insert(0, ROOT)
    try:
        from model_backend.worker import environment as diagnostics
    finally:
        sys.path.remove(ROOT)
    cache = _fake_hf_cache(tmp_path)
    walked = diagnostics.probe_hf_cache(str(cache), use_hub=False)
    scanned = diagnostics.probe_hf_cache(str(cache))
    assert walked["repos"] == scanned["repos"] and walked["method"] == "folder walk"
    arch = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    assert diagnostics.arch_supported([8, 9], arch) is True       # Ada runs sm_86 kernels
    assert diagnostics.arch_supported([6, 1], arch) is False      # Pascal: none
    assert diagnostics.arch_supported([6, 1], ["sm_50", "compute_50"]) is True
    assert diagnostics.arch_supported([8, 0], []) is None


# -- the dialog under QGIS ------------------------------------------------------------------------
def wait_for(predicate, timeout=60.0):
    """Run the Qt event loop until ``predicate()`` holds (bounded)."""
    from qgis.PyQt.QtCore import QCoreApplication, QEventLoop

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting on the Qt event loop"
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


@pytest.fixture
def make_dialog(bs, qgis_app):
    made = []

    def make(**kwargs):
        kwargs.setdefault("nvidia", None)
        kwargs.setdefault("base_python", SYSTEM_PYTHON)
        dialog = bs.BackendSetupDialog(**kwargs)
        made.append(dialog)
        return dialog
    yield make
    for dialog in made:
        dialog.reject()  # kills whatever still runs
        dialog.deleteLater()
    wait_for(lambda: True)


def test_dialog_shows_gpu_and_choice(bs, sp, make_dialog, tmp_path, tc):
    dialog = make_dialog(venv_dir=str(tmp_path / "venv"))
    assert "No NVIDIA GPU" in dialog.gpu_label.text() and "CPU build" in dialog.torch_label.text()
    assert dialog.create_button.isEnabled() and not dialog.cancel_button.isEnabled()
    assert "not created yet" in dialog.worker_label.text()
    gpu = make_dialog(venv_dir=str(tmp_path / "venv"), nvidia=tc.parse_nvidia_smi(SMI["blackwell_570"]),
                      platform="linux")
    assert "RTX 5090" in gpu.gpu_label.text() and "570.133.07" in gpu.gpu_label.text()
    assert "cu128" in gpu.torch_label.text() and gpu.choice.device == "cuda"
    detected = make_dialog(venv_dir=str(tmp_path / "venv"), nvidia=bs.DETECT)
    if shutil.which("nvidia-smi") is None:
        wait_for(lambda: detected.choice is not None, 20)
        assert detected.choice.build == "cpu" and detected.create_button.isEnabled()
    from qgis.core import QgsApplication
    default = make_dialog()  # <QGIS settings dir>/earthgptx/worker-venv
    assert default.venv_dir() == os.path.join(os.path.normpath(QgsApplication.qgisSettingsDirPath()), "earthgptx",
                                              "worker-venv")


def test_dialog_runs_steps_until_success(bs, sp, make_dialog, tmp_path):
    venv = tmp_path / "settings" / "earthgptx" / "worker-venv"
    python = sp.worker_python(str(venv))

    def steps(folder, base, choice):
        assert folder == str(venv) and base == SYSTEM_PYTHON and choice.build == "cpu"
        return [sp.Step("create-venv", "Create the virtual environment",
                        (base, "-m", "venv", "--without-pip", folder), cwd=os.path.dirname(folder)),
                sp.Step("check", "Check the worker Python",
                        (python, "-c", "import sys; print('worker prefix', sys.prefix)"))]

    dialog = make_dialog(venv_dir=str(venv), steps_factory=steps)
    ready = []
    dialog.workerReady.connect(ready.append)
    started = []
    dialog.runner.stepStarted.connect(lambda i, n, step: started.append((i, n, step.key)))
    dialog.create_button.click()
    assert dialog.is_running() and dialog.cancel_button.isEnabled() and not dialog.create_button.isEnabled()
    wait_for(lambda: dialog.last_result is not None)
    assert dialog.last_result[0], dialog.last_result
    assert started == [(0, 2, "create-venv"), (1, 2, "check")]
    assert ready == [python] and dialog.worker_python_path == python and os.path.isfile(python)
    log = dialog.log.toPlainText()
    assert "worker prefix " + str(venv) in log and "-m venv --without-pip" in log
    assert dialog.progress.value() == dialog.progress.maximum() == 2
    assert "ready" in dialog.status_label.text() and dialog.worker_label.text() == python
    assert dialog.create_button.isEnabled() and not dialog.cancel_button.isEnabled()


def test_dialog_stops_at_failing_step(sp, make_dialog, tmp_path):
    marker = tmp_path / "third-step-ran"
    py = sys.executable
    steps = [sp.Step("one", "First", (py, "-c", "print('one')")),
             sp.Step("two", "Second", (py, "-c", "import sys; print('two'); sys.exit(3)"), hint="Try again."),
             sp.Step("three", "Third", (py, "-c", f"open({str(marker)!r}, 'w')"))]
    dialog = make_dialog(venv_dir=str(tmp_path / "venv"), steps_factory=lambda *a: steps)
    dialog.create_button.click()
    wait_for(lambda: dialog.last_result is not None)
    ok, failed, message = dialog.last_result
    assert (ok, failed) == (False, 1)
    assert "step 2 of 3 (Second)" in message and "exit status 3" in message and "Try again." in message
    assert message in dialog.status_label.text()
    assert not marker.exists() and dialog.worker_python_path is None
    log = dialog.log.toPlainText()
    assert "one" in log and "two" in log and "Third" not in log
    assert dialog.progress.value() == 1


def test_dialog_cancel_and_unstartable_program(sp, make_dialog, tmp_path):
    code = "import time; print('sleeping', flush=True); time.sleep(60)"
    sleeper = [sp.Step("sleep", "Sleep", (sys.executable, "-c", code))]
    dialog = make_dialog(venv_dir=str(tmp_path / "venv"), steps_factory=lambda *a: sleeper)
    dialog.create_button.click()
    wait_for(lambda: "sleeping" in dialog.log.toPlainText(), 30)
    begun = time.monotonic()
    dialog.cancel_button.click()
    wait_for(lambda: dialog.last_result is not None, 10)
    assert time.monotonic() - begun < 10
    assert dialog.last_result[0] is False and "Cancelled at step 1 of 1" in dialog.last_result[2]
    assert not dialog.is_running()

    missing = [sp.Step("x", "Start nothing", (str(tmp_path / "no-such-python"), "-c", "pass"))]
    dialog.steps_factory = lambda *a: missing
    dialog.last_result = None
    dialog.create_button.click()
    wait_for(lambda: dialog.last_result is not None, 10)
    assert dialog.last_result[:2] == (False, 0) and "could not be started" in dialog.last_result[2]

    # closing the dialog while a step runs kills it
    dialog.steps_factory = lambda *a: sleeper
    dialog.create_button.click()
    wait_for(lambda: dialog.is_running())
    dialog.reject()
    assert not dialog.is_running()


def test_dialog_refuses_folder_inside_plugin(make_dialog):
    dialog = make_dialog(venv_dir=os.path.join(ROOT, "worker-venv"))
    assert dialog.start_setup() is False and not dialog.is_running()
    assert "outside the plugin folder" in dialog.status_label.text()


def test_dialog_diagnostics_and_copy(make_dialog, tmp_path):
    dialog = make_dialog(venv_dir=os.path.join(ROOT, ".venv"))  # this venv's python runs the report
    assert dialog.worker_python() == VENV_PYTHON
    dialog.diagnostics_button.click()
    assert dialog.is_running()
    wait_for(lambda: dialog.last_result is not None, 240)
    assert dialog.last_result[0], dialog.last_result
    report = dialog.report.toPlainText()
    assert report.startswith("EarthGPT-X worker diagnostics"), report[:500]
    assert re.search(r"torch +2\.14\.1", report) and re.search(r"CUDA available +no", report)
    assert dialog.report.isReadOnly() and dialog.tabs.currentIndex() == 1
    dialog.copy_button.click()
    from qgis.PyQt.QtWidgets import QApplication
    assert QApplication.clipboard().text() == report

    empty = make_dialog(venv_dir=str(tmp_path / "nothing-here"))
    assert empty.run_diagnostics() is False and "Create / update first" in empty.status_label.text()


def test_diagnostics_text_and_findings_for_a_gpu_machine():
    """The GPU branches of the report (no GPU here: a report as a CUDA machine gives it)."""
    sys.path.insert(0, ROOT)
    try:
        from model_backend.worker import environment as diagnostics
    finally:
        sys.path.remove(ROOT)
    gib = 1024 ** 3
    report = {
        "python": {"version": "3.12.3"}, "model_backend": {"version": "0.1.0", "protocol": 1},
        "torch": {"status": "ok", "version": "2.14.1+cu130", "cuda_build": "13.0", "cuda_available": True,
                  "arch_list": ["sm_75", "sm_80", "sm_86", "sm_90"], "mps_available": False, "warnings": [],
                  "devices": [{"status": "ok", "index": 0, "name": "NVIDIA GeForce RTX 4070", "capability": [8, 9],
                               "total_bytes": 12 * gib, "free_bytes": 11 * gib, "arch_supported": True},
                              {"status": "ok", "index": 1, "name": "NVIDIA GeForce GTX 1080", "capability": [6, 1],
                               "total_bytes": 8 * gib, "free_bytes": 8 * gib, "arch_supported": False}]},
        "nvidia_driver": {"status": "ok", "version": "580.82.07",
                          "gpus": [{"name": "NVIDIA GeForce RTX 4070", "memory": "12282 MiB"}]},
        "packages": {"bitsandbytes": {"status": "error", "error": "OSError: libcudart.so.13: cannot open"},
                     "rasterio": {"status": "missing"}},
        "hf_cache": {"status": "ok", "path": "/c", "exists": True, "repos": [
            {"repo_id": "Qwen/Qwen3-VL-4B-Instruct", "repo_type": "model", "size_bytes": 9 * gib, "files": 14}]},
        "memory": {"status": "ok", "total_bytes": 32 * gib, "available_bytes": 20 * gib},
    }
    report["findings"] = found = diagnostics.findings(report)
    assert any("no kernels for GPU 1" in f for f in found) and any("4-bit quantization" in f for f in found)
    assert any("Missing packages: rasterio" in f for f in found) and not any("No GPU" in f for f in found)
    text = diagnostics.format_text(report)
    assert re.search(r"GPU 0 .*RTX 4070 \(compute capability 8\.9\): 12\.0 GiB total, 11\.0 GiB free", text)
    assert "NO KERNELS IN THIS BUILD" in text and "580.82.07" in text
    assert re.search(r"Qwen/Qwen3-VL-4B-Instruct +9\.0 GiB +14 files", text)
    cpu_build = dict(report, torch=dict(report["torch"], cuda_build=None, cuda_available=False, devices=[]))
    assert any("CPU build" in f for f in diagnostics.findings(cpu_build))
    no_gpu = dict(report, torch=dict(report["torch"], cuda_available=False, devices=[]))
    assert any("may be too old for CUDA 13.0" in f for f in diagnostics.findings(no_gpu))
