"""fastface models: the registry, downloads and the model cache, against a real HTTP server on
127.0.0.1 (http.server in a thread) serving the shared models and files the tests make. The
registry is pointed at that server with $FASTFACE_REGISTRY; nothing reaches the internet."""
import collections
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from shared_data import DATA, MOBILEFACENET, MOBILEFACENET_CARD, RETINAFACE, require

import fastface
from fastface import hub
from fastface.hub import cache as hub_cache, registry
from fastface.cli import main

MFN_FILES = [MOBILEFACENET / "mobilefacenet.param", MOBILEFACENET / "mobilefacenet.bin"]


class Server(http.server.ThreadingHTTPServer):
    """Serves ``routes`` (path -> bytes) with HTTP Range support. ``faults`` (path -> list) are
    consumed one per request: ("drop", n) sends n bytes of the body then closes the connection,
    ("stall", seconds) waits before answering; ``delay`` paces the body (seconds per 64 KiB)."""
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes, self.faults, self.requests, self.delay = {}, {}, [], 0.0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path}"

    def gets(self, path: str) -> list:
        return [r for p, r in self.requests if p == path]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        path = self.path.lstrip("/")
        server.requests.append((path, self.headers.get("Range")))
        fault = server.faults.get(path, []).pop(0) if server.faults.get(path) else None
        if fault and fault[0] == "stall":
            time.sleep(fault[1])
        body = server.routes.get(path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if fault and fault[0] == "drop":
            payload = payload[:fault[1]]
            self.close_connection = True
        for i in range(0, len(payload), 1 << 16):
            if server.delay:
                time.sleep(server.delay)
            try:
                self.wfile.write(payload[i:i + (1 << 16)])
            except (BrokenPipeError, ConnectionResetError):
                return
        self.wfile.flush()


@pytest.fixture
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty model cache and a registry file the test fills (models served locally)."""
    monkeypatch.setenv("FASTFACE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FASTFACE_OFFLINE", raising=False)
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"models": {}}))
    monkeypatch.setenv("FASTFACE_REGISTRY", str(path))
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(server, files: dict, task="recognizer", fmt="ncnn", card=None, commercial=True, member=None):
    """A registry entry serving ``files`` (name -> bytes) from ``server``."""
    specs = []
    for name, data in files.items():
        server.routes[name] = data
        spec = {"name": name, "url": server.url(name), "sha256": sha(data), "size": len(data),
                "checksum_source": "made by the test", "verified_locally": True}
        if member:
            spec.update(member=member, size=None)
        specs.append(spec)
    return {"task": task, "description": "test model", "format": fmt,
            "licence": "Apache-2.0" if commercial else "non-commercial research",
            "licence_url": "https://example.invalid/licence", "commercial_use": commercial,
            "origin": "test", "files": specs, "card": card if card is not None else dict(MOBILEFACENET_CARD),
            "accuracy": None}


def register(path: Path, **entries) -> None:
    document = json.loads(path.read_text())
    document["models"].update({k.replace("_", "-"): v for k, v in entries.items()})
    path.write_text(json.dumps(document))


@pytest.fixture
def mfn(server, cache):
    """The shared MobileFaceNet registered as 'mfn-test' (Apache-2.0 here, so no licence step)."""
    if not MOBILEFACENET.exists():
        pytest.skip(f"shared test data not found: {MOBILEFACENET}")
    files = {p.name: p.read_bytes() for p in MFN_FILES}
    register(cache, mfn_test=entry(server, files))
    return files


def faces(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


# --- the shipped registry ------------------------------------------------------------------------

def test_shipped_registry_loads_with_the_issue_checksums():
    models = registry.load_registry()
    sface, int8 = models["sface"], models["sface-int8"]
    assert (sface.files[0].sha256, sface.files[0].size) == (
        "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79", 38_696_353)
    assert (int8.files[0].sha256, int8.files[0].size) == (
        "2b0e941e6f16cc048c20aee0c8e31f569118f65d702914540f7bfdc14048d78a", 9_896_933)
    for name in ("sface", "sface-int8", "yunet-2023mar", "yunet-n", "yunet-s-dynamic", "retinaface-mnet025",
                 "mobilefacenet-ncnn", "buffalo_s", "buffalo_l"):
        assert name in models
        assert all(f.url.startswith("https://") for f in models[name].files)
    assert not models["buffalo_l"].commercial_use and not models["buffalo_s"].commercial_use
    assert models["buffalo_l"].files[0].member["name"] == "w600k_r50.onnx"
    assert models["sface"].commercial_use and models["sface"].licence == "Apache-2.0"


@require(DATA / "models")
def test_checksums_marked_verified_match_the_shared_files():
    by_name = {}
    for path in (DATA / "models").rglob("*"):
        if path.is_file():
            by_name.setdefault(path.name, []).append(path)
    verified = [f for e in registry.load_registry().values() for f in e.files if f.verified_locally and f.url]
    assert len(verified) >= 8
    for f in verified:
        paths = by_name.get(f.name)
        assert paths, f"{f.name} is marked verified but no shared file has its name"
        assert any(p.stat().st_size == f.size and sha(p.read_bytes()) == f.sha256 for p in paths), f.name


def test_entry_missing_a_field_is_refused_at_load_naming_it(tmp_path, monkeypatch, server):
    good = entry(server, {"m.onnx": b"x"}, fmt="onnx", card={"size": 112, "channel_order": "RGB"})
    for where, key in (("entry", "licence"), ("file", "sha256"), ("card", "channel_order")):
        raw = json.loads(json.dumps(good))
        del (raw if where == "entry" else raw["files"][0] if where == "file" else raw["card"])[key]
        path = tmp_path / f"bad-{key}.json"
        path.write_text(json.dumps({"models": {"broken": raw}}))
        monkeypatch.setenv("FASTFACE_REGISTRY", str(path))
        with pytest.raises(registry.RegistryError, match=f"model 'broken'.*missing field '{key}'"):
            registry.load_registry()
    raw = json.loads(json.dumps(good))
    raw["files"][0]["sha256"] = "abc"
    path.write_text(json.dumps({"models": {"broken": raw}}))
    with pytest.raises(registry.RegistryError, match="sha256 must be 64"):
        registry.load_registry()


def test_unknown_name_lists_close_matches(cache, capsys):
    with pytest.raises(registry.UnknownModelError, match="did you mean sface") as info:
        hub.pull("sfase")
    assert info.value.matches[0] == "sface"
    assert main(["models", "pull", "bufalo_l"]) == 2
    assert "buffalo_l" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown model"):
        fastface.Embedder.from_name("no-such-model")


# --- pull, path, verify, rm ------------------------------------------------------------------------

def test_pull_installs_the_checked_model_and_names_resolve(mfn, server, capsys):
    assert main(["models", "pull", "mfn-test", "--quiet"]) == 0
    param = Path(capsys.readouterr().out.strip())
    assert param == hub.cache_dir() / "mfn-test" / "mfn-test.param"
    for name, data in mfn.items():
        assert param.with_suffix(Path(name).suffix).read_bytes() == data
    manifest = json.loads((param.parent / "install.json").read_text())
    assert manifest["converted"] is False and set(manifest["files"]) == {"mfn-test.param", "mfn-test.bin",
                                                                         "mfn-test.json"}
    assert not list((hub.cache_dir() / ".downloads").iterdir())  # the download became the model
    # by name == by path, through the API and the path command
    reference = fastface.Embedder(MFN_FILES[0], card=MOBILEFACENET_CARD).embed(faces())
    np.testing.assert_array_equal(fastface.Embedder.from_name("mfn-test").embed(faces()), reference)
    assert main(["models", "path", "mfn-test"]) == 0 and capsys.readouterr().out.strip() == str(param)
    # a second pull is a no-op: no request reaches the server
    count = len(server.requests)
    assert hub.pull("mfn-test") == param and len(server.requests) == count
    assert main(["models", "list", "--json"]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["mfn-test"]["status"] == "installed" and listed["sface"]["status"] == "-"
    assert listed["mfn-test"]["size"] == sum(map(len, mfn.values()))
    assert main(["models", "verify"]) == 0 and "mfn-test: ok" in capsys.readouterr().out
    # damage is found by verify, and repaired by pull --force
    with open(param.with_suffix(".bin"), "r+b") as f:
        f.seek(1000)
        f.write(b"\xff\xfe")
    assert main(["models", "verify", "mfn-test"]) == 1 and "DAMAGED" in capsys.readouterr().out
    hub.pull("mfn-test", force=True, progress=False)
    assert hub.verify(["mfn-test"]) == {"mfn-test": []}
    assert main(["models", "rm", "mfn-test"]) == 0 and hub.installed("mfn-test") is None
    assert main(["models", "rm", "mfn-test"]) == 2


def test_resume_after_the_server_drops_the_connection(mfn, server):
    cut = 1_000_000
    server.faults["mobilefacenet.bin"] = [("drop", cut)]
    hub.pull("mfn-test", progress=False, backoff=0.01)
    assert server.gets("mobilefacenet.bin") == [None, f"bytes={cut}-"]  # the second request resumed
    assert hub.verify(["mfn-test"]) == {"mfn-test": []}


def test_corrupted_bytes_are_refused_and_nothing_is_installed(mfn, server):
    data = bytearray(mfn["mobilefacenet.bin"])
    data[123456] ^= 0x40
    server.routes["mobilefacenet.bin"] = bytes(data)
    with pytest.raises(hub.ChecksumError, match="sha256 .* differs .* nothing installed"):
        hub.pull("mfn-test", progress=False)
    assert hub.installed("mfn-test") is None and not (hub.cache_dir() / "mfn-test").exists()
    # the bad bytes are not kept for a resume (the good .param download is, for the next pull)
    assert not (hub.cache_dir() / ".downloads" / f"{sha(mfn['mobilefacenet.bin'])}.part").exists()


def test_bad_download_leaves_the_previous_install_intact(mfn, server):
    param = hub.pull("mfn-test", progress=False)
    server.routes["mobilefacenet.bin"] = mfn["mobilefacenet.bin"][:-10] + b"0123456789"
    with pytest.raises(hub.ChecksumError):
        hub.pull("mfn-test", force=True, progress=False)
    assert hub.verify(["mfn-test"]) == {"mfn-test": []} and param.is_file()


def test_http_404_and_timeout_are_clear_errors(cache, server, capsys):
    register(cache, missing=entry(server, {"gone.param": b"7767517", "gone.bin": b"\0" * 8}))
    del server.routes["gone.param"]
    with pytest.raises(hub.DownloadError, match="HTTP 404 .*gone.param"):
        hub.pull("missing", progress=False)
    assert len(server.gets("gone.param")) == 1  # a 404 is not retried
    register(cache, slow=entry(server, {"slow.param": b"7767517", "slow.bin": b"\0" * 8}))
    server.faults["slow.param"] = [("stall", 1.5)] * 2
    started = time.monotonic()
    assert main(["models", "pull", "slow", "--timeout", "0.2", "--retries", "1", "--quiet"]) == 2
    assert time.monotonic() - started < 3
    err = capsys.readouterr().err
    assert "timed out" in err and "after 2 attempts" in err
    assert hub.installed("slow") is None


def test_offline_mode_never_touches_the_network(mfn, server, monkeypatch):
    monkeypatch.setenv("FASTFACE_OFFLINE", "1")
    with pytest.raises(hub.OfflineError, match="FASTFACE_OFFLINE"):
        hub.pull("mfn-test")
    with pytest.raises(hub.OfflineError):
        fastface.Embedder.from_name("mfn-test")
    assert server.requests == []
    monkeypatch.delenv("FASTFACE_OFFLINE")
    hub.pull("mfn-test", progress=False)
    monkeypatch.setenv("FASTFACE_OFFLINE", "1")
    count = len(server.requests)
    assert fastface.Embedder.from_name("mfn-test").dim == 128  # installed models resolve offline
    assert len(server.requests) == count


def test_two_processes_pulling_at_once_download_once(mfn, server):
    server.delay = 0.04  # ~2.5 s for the .bin
    command = [sys.executable, "-m", "fastface", "models", "pull", "mfn-test"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.monotonic() + 30
    while not server.gets("mobilefacenet.bin") and time.monotonic() < deadline:
        time.sleep(0.02)
    # the first process is downloading: the second one starts now and finds the lock taken
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    results = [p.communicate(timeout=60) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], [r[1].decode() for r in results]
    assert results[0][0] == results[1][0] and results[0][0].strip().endswith(b"mfn-test.param")
    assert b"another process is pulling it; waiting" in results[1][1]
    assert len(server.gets("mobilefacenet.bin")) == 1 and len(server.gets("mobilefacenet.param")) == 1
    assert hub.verify(["mfn-test"]) == {"mfn-test": []}


def test_non_commercial_models_need_the_licence_accepted(cache, server, capsys):
    if not MOBILEFACENET.exists():
        pytest.skip(f"shared test data not found: {MOBILEFACENET}")
    register(cache, nc=entry(server, {p.name: p.read_bytes() for p in MFN_FILES}, commercial=False))
    assert main(["models", "pull", "nc"]) == 2
    err = capsys.readouterr().err
    assert "non-commercial research" in err and "https://example.invalid/licence" in err and "--accept-license" in err
    assert server.requests == []
    assert main(["models", "pull", "nc", "--accept-license", "--quiet"]) == 0
    assert json.loads(hub.installed("nc").param.with_suffix(".json").read_text())["licence"] == \
        "non-commercial research"


def test_unwritable_or_full_cache_is_a_clear_error(mfn, server, tmp_path, monkeypatch):
    param = hub.pull("mfn-test", progress=False)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(hub_cache.shutil, "disk_usage", lambda path: usage(10 ** 9, 10 ** 9 - 1000, 1000))
    with pytest.raises(hub.CacheError, match="0.0 MB free but this model needs about 4.1 MB"):
        hub.pull("mfn-test", force=True, progress=False)
    assert hub.verify(["mfn-test"]) == {"mfn-test": []} and param.is_file()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FASTFACE_HOME", str(blocker / "home"))
    with pytest.raises(hub.CacheError, match="not writable.*FASTFACE_HOME"):
        hub.pull("mfn-test", progress=False)


@require(RETINAFACE)
def test_cli_model_and_detector_names_resolve_through_the_cache(mfn, server, cache):
    files = {p.name: p.read_bytes() for p in sorted(RETINAFACE.glob("mnet.25-opt.*"))}
    register(cache, rf_test=entry(server, files, task="detector", card={"kind": "retinaface"}))
    assert hub.resolve_arg("rf-test", "detector").endswith("rf-test.param")  # pulled on first use
    assert hub.resolve_arg(str(MFN_FILES[0]), "recognizer") == str(MFN_FILES[0])  # paths pass through
    detector = fastface.Detector.from_name("rf-test")
    assert detector.kind == "retinaface"
    with pytest.raises(ValueError, match="is a detector, not a recognizer"):
        fastface.Embedder.from_name("rf-test")


def test_bundled_models_are_listed_from_their_cards(cache, tmp_path, monkeypatch, capsys):
    if not MOBILEFACENET.exists():
        pytest.skip(f"shared test data not found: {MOBILEFACENET}")
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    for src in MFN_FILES:
        shutil.copy(src, bundled / f"tiny{src.suffix}")
    (bundled / "tiny.json").write_text(json.dumps({**MOBILEFACENET_CARD, "task": "recognition", "licence": "CC0-1.0"}))
    (bundled / "arch.json").write_text(json.dumps({**MOBILEFACENET_CARD, "task": "recognition"}))  # no weights
    shutil.copy(MFN_FILES[0], bundled / "arch.param")
    monkeypatch.setattr("fastface.hub.bundled.bundled_dir", lambda: bundled)
    assert main(["models", "list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "bundled" in lines["tiny"] and "CC0-1.0" in lines["tiny"] and "arch" not in lines
    assert fastface.Embedder.from_name("tiny").dim == 128
    assert hub.pull("tiny") == bundled / "tiny.param"


# --- conversion on arrival --------------------------------------------------------------------------

def test_missing_export_extra_is_named_before_downloading(cache, server, monkeypatch):
    register(cache, onnx_test=entry(server, {"m.onnx": b"onnx"}, fmt="onnx", card={"size": 112, "channel_order": "RGB"}))
    monkeypatch.setattr(hub_cache, "EXPORT_MODULES", ("torch", "no_such_module_xyz"))
    with pytest.raises(hub.ExtraMissingError, match=r"\[export\] extra .*no_such_module_xyz.*copy"):
        hub.pull("onnx-test")
    assert server.requests == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's notice about its TorchScript ONNX exporter
def test_onnx_source_in_a_zip_is_converted_and_gated_on_arrival(cache, server, tmp_path):
    torch = pytest.importorskip("torch", reason="conversion needs the [export] extra")
    for module in ("pnnx", "onnx", "onnxruntime"):
        pytest.importorskip(module, reason="conversion needs the [export] extra")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.BatchNorm2d(8),
                                torch.nn.PReLU(8), torch.nn.Conv2d(8, 16, 3, stride=4, padding=1),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 32)).eval()
    onnx_path = tmp_path / "tiny_rec.onnx"
    torch.onnx.export(model, torch.zeros(1, 3, 112, 112), str(onnx_path), input_names=["input.1"],
                      output_names=["fc1"], dynamo=False)
    archive = tmp_path / "pack.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(onnx_path, "pack/tiny_rec.onnx")
        z.writestr("pack/other.onnx", b"not this one")
    data = onnx_path.read_bytes()
    register(cache, onnx_test=entry(server, {"pack.zip": archive.read_bytes()}, fmt="onnx",
                                    card={"size": [112, 112], "channel_order": "RGB", "mean": 127.5,
                                          "scale": 1 / 127.5, "threshold": 0.3},
                                    member={"name": "tiny_rec.onnx", "sha256": sha(data), "size": len(data)}))
    param = hub.pull("onnx-test", progress=False, log=lambda m: None)
    card = json.loads(param.with_suffix(".json").read_text())
    assert card["parity"]["passed"] and card["parity"]["reference"] == "onnxruntime" and card["dim"] == 32
    assert card["source"]["sha256"] == sha(data) and card["threshold"] == 0.3 and card["licence"] == "Apache-2.0"
    manifest = json.loads((param.parent / "install.json").read_text())
    assert manifest["converted"] and manifest["parity"]["min_cosine"] >= 0.9999
    assert sorted(manifest["files"]) == ["onnx-test.bin", "onnx-test.json", "onnx-test.param"]  # no .onnx kept
    # the installed model embeds like onnxruntime on the source file
    crops = faces(4, seed=3)
    ours = fastface.Embedder.from_name("onnx-test").embed(crops, channel_order="RGB")
    x = ((crops.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    theirs = np.concatenate([session.run(None, {"input.1": x[i:i + 1]})[0] for i in range(len(x))])
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    assert (np.sum(ours * theirs, axis=1) > 0.9999).all()


@require(DATA / "models")
def test_shipped_entries_install_and_run_from_locally_served_copies(cache, server, capsys):
    """The shipped entries whose files ../shared holds (same sha256), served from 127.0.0.1: their
    checksums, cards and conversion settings give working models."""
    cv2 = pytest.importorskip("cv2")
    names = ["retinaface-mnet025", "mobilefacenet-ncnn"]
    if all(hub.importable(m) for m in hub.EXPORT_MODULES):
        names.append("yunet-2023mar")  # converted from ONNX and gated on arrival
    shipped = json.loads(registry.REGISTRY_FILE.read_text())["models"]
    shared = {p.name: p for p in (DATA / "models").rglob("*") if p.is_file()}
    for name in names:
        raw = shipped[name]
        for f in raw["files"]:
            server.routes[f["name"]] = shared[f["name"]].read_bytes()
            f["url"] = server.url(f["name"])
        register(cache, **{name: raw})
    image = cv2.imread(str(DATA / "faces" / "deepface-sample" / "img1.jpg"))
    for name in names:
        hub.pull(name, accept_license=True, progress=False, log=lambda message: None)
    embedder = fastface.Embedder.from_name("mobilefacenet-ncnn")
    for name in names[:1] + names[2:]:
        faces = fastface.Detector.from_name(name).detect(image)
        assert len(faces) == 1 and faces[0].score > 0.9, name
        assert embedder.embed_image(image, faces[0].landmarks).shape == (128,)
    assert hub.verify() == {name: [] for name in names}
    # the CLI takes the names where it takes paths (deepface-sample img1/img2: one person)
    photos = [str(DATA / "faces" / "deepface-sample" / f"img{i}.jpg") for i in (1, 2)]
    assert main(["verify", *photos, "--model", "mobilefacenet-ncnn", "--detector", "retinaface-mnet025",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["same"] is True


def test_pytorch_state_dict_is_converted_on_arrival(cache, server, tmp_path):
    torch = pytest.importorskip("torch", reason="conversion needs the [export] extra")
    pytest.importorskip("pnnx", reason="conversion needs the [export] extra")
    from fastface.export import random_backbone

    model = random_backbone("mobilefacenet", seed=2)
    torch.save(model.state_dict(), tmp_path / "mfn.pt")
    register(cache, torch_test=entry(server, {"mfn.pt": (tmp_path / "mfn.pt").read_bytes()}, fmt="pytorch",
                                     card={"size": 112, "backbone": "mobilefacenet"}))
    param = hub.pull("torch-test", progress=False, log=lambda message: None)
    card = json.loads(param.with_suffix(".json").read_text())
    assert card["parity"]["passed"] and card["parity"]["reference"] == "torch" and card["backbone"] == "mobilefacenet"
    crops = faces(2, seed=4)
    x = torch.from_numpy(((crops.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        theirs = torch.nn.functional.normalize(model(x)).numpy()
    ours = fastface.Embedder.from_name("torch-test").embed(crops, channel_order="RGB")
    assert (np.sum(ours * theirs, axis=1) > 0.9999).all()


def test_pull_quantizes_on_arrival_only_with_enough_faces(mfn, server, capsys, tmp_path):
    pytest.importorskip("ncnn", reason="quantizing needs the ncnn Python package")
    pytest.importorskip("cv2")
    few = tmp_path / "few"
    few.mkdir()
    (few / "a.jpg").write_bytes((DATA / "faces" / "deepface-sample" / "img1.jpg").read_bytes())
    assert main(["models", "pull", "mfn-test", "--quiet", "--int8", str(few)]) == 2
    assert "at least 200 needed" in capsys.readouterr().err
    installed = hub.cache_dir() / "mfn-test"
    assert (installed / "mfn-test.param").is_file() and not (installed / "mfn-test.int8.param").exists()
