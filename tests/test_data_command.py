"""`nodebench data` and the data gate: catalog, verification, fetch against a local HTTP server (nothing is
downloaded from the internet), and run/reproduce refusing missing data before anything is written."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from nodebench.cli import main
from nodebench.datasets import catalog
from nodebench.datasets import fetch as fetch_module
from nodebench.datasets.fetch import download_file, fetch
from nodebench.errors import UserError
from nodebench.runner.case import Case

PAYLOAD = bytes(range(256)) * 64  # 16 KiB


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (path → bytes) with HTTP Range support (unless ``ranges`` is off); records requests."""

    files: dict[str, bytes] = {}
    ranges = True
    cut: int | None = None  # send only this many bytes of the body, then drop the connection
    range_from: int | None = None  # answer a range request with a 206 from this byte, whatever was asked
    raw: bytes | None = None  # answer with these bytes (status line, headers and body), then drop the connection
    requests: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.requests.append((self.path, self.headers.get("Range")))
        if self.raw is not None:
            self.wfile.write(self.raw)
            self.close_connection = True
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        header = self.headers.get("Range")
        if header and self.ranges:
            start = int(header.removeprefix("bytes=").split("-")[0]) if self.range_from is None else self.range_from
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.cut is not None:
            self.wfile.write(body[start:start + self.cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    RangeHandler.files, RangeHandler.ranges, RangeHandler.requests, RangeHandler.cut = {}, True, [], None
    RangeHandler.range_from, RangeHandler.raw = None, None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield RangeHandler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- download_file ------------------------------------------------------------------------------------------

def test_download_verifies_and_renames_atomically(server, tmp_path):
    handler, base = server
    handler.files["/f.bin"] = PAYLOAD
    target = download_file(f"{base}/f.bin", tmp_path / "f.bin", sha256=sha(PAYLOAD), progress=False)
    assert target.read_bytes() == PAYLOAD and not (tmp_path / "f.bin.part").exists()
    assert handler.requests == [("/f.bin", None)]


def test_download_resumes_a_partial_file_with_a_range_request(server, tmp_path):
    handler, base = server
    handler.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:5000])
    download_file(f"{base}/f.bin", tmp_path / "f.bin", md5=hashlib.md5(PAYLOAD).hexdigest(), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert handler.requests == [("/f.bin", "bytes=5000-")]


def test_download_restarts_when_the_server_ignores_the_range(server, tmp_path):
    handler, base = server
    handler.files["/f.bin"], handler.ranges = PAYLOAD, False
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes")
    download_file(f"{base}/f.bin", tmp_path / "f.bin", sha256=sha(PAYLOAD), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_download_of_a_complete_partial_file_is_not_repeated(server, tmp_path):
    handler, base = server
    handler.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    download_file(f"{base}/f.bin", tmp_path / "f.bin", sha256=sha(PAYLOAD), progress=False)  # server answers 416
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert handler.requests == [("/f.bin", f"bytes={len(PAYLOAD)}-")]


def test_a_partial_file_longer_than_the_file_is_downloaded_again(server, tmp_path):
    """A 416 was taken for "the partial file is complete" whatever its length: a stale, longer ``.part`` was
    installed as the file when no checksum is pinned (16391 bytes for a 16384-byte file)."""
    handler, base = server
    handler.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD + b"garbage")
    download_file(f"{base}/f.bin", tmp_path / "f.bin", progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert handler.requests == [("/f.bin", f"bytes={len(PAYLOAD) + 7}-"), ("/f.bin", None)]


@pytest.mark.parametrize("start", [0, 1000])
def test_a_resumed_reply_that_starts_elsewhere_is_not_appended(server, tmp_path, start):
    """A 206 whose Content-Range does not start where the ``.part`` ends was appended to it: an unpinned file
    was installed corrupt (21384 bytes for 16384 when the server sent the whole file as a 206)."""
    handler, base = server
    handler.files["/f.bin"], handler.range_from = PAYLOAD, start
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:5000])
    download_file(f"{base}/f.bin", tmp_path / "f.bin", progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert handler.requests == [("/f.bin", "bytes=5000-"), ("/f.bin", None)]


def test_download_with_a_wrong_checksum_deletes_it_and_says_so(server, tmp_path):
    handler, base = server
    handler.files["/f.bin"] = PAYLOAD
    with pytest.raises(UserError, match="expected 0000") as err:
        download_file(f"{base}/f.bin", tmp_path / "f.bin", sha256="0000", progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()


def test_download_errors_are_one_line(server, tmp_path):
    _, base = server
    with pytest.raises(UserError, match="HTTP 404") as err:
        download_file(f"{base}/absent", tmp_path / "x", progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "x").exists()
    with pytest.raises(UserError, match="could not download http://127.0.0.1:9/"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", progress=False, timeout=2)


def test_a_reply_cut_inside_a_chunk_is_a_failed_download(server, tmp_path):
    """http.client's IncompleteRead (a chunked reply cut short, e.g. by a proxy) escaped as a traceback."""
    handler, base = server
    handler.raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhello"
    with pytest.raises(UserError, match=r"could not download .*/f.bin: a malformed reply \(IncompleteRead") as err:
        download_file(f"{base}/f.bin", tmp_path / "f.bin", progress=False)
    assert "\n" not in str(err.value) and list(tmp_path.iterdir()) == []


def test_a_folder_at_the_target_path_is_refused_before_downloading(server, tmp_path):
    """The file was downloaded, then failed to be renamed onto the folder ("Is a directory: 'f.bin.part'")."""
    handler, base = server
    handler.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin").mkdir()
    with pytest.raises(UserError, match="f.bin is a folder where the downloaded file is to go; move it away"):
        download_file(f"{base}/f.bin", tmp_path / "f.bin", progress=False)
    assert handler.requests == [] and not (tmp_path / "f.bin.part").exists()


# -- a local manifest: a gzipped IDX-like set, a record set, an archive member ------------------------------

def tarball(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def members_sha(members: dict[str, bytes]) -> str:
    lines = sorted(f"{name.rsplit('/', 1)[-1]}\t{sha(data)}\n" for name, data in members.items())
    return sha("".join(lines).encode())


@pytest.fixture
def local_manifest(server, tmp_path):
    handler, base = server
    plain = b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x01\x02\x03"
    records = {"set-x/1.txt": b"Time,Parameter,Value\n00:00,HR,60\n", "set-x/2.txt": b"Time,Parameter,Value\n"}
    batch = b"batch bytes"
    handler.files |= {"/labels.gz": gzip.compress(plain), "/set-x.tar.gz": tarball(records),
                      "/archive.tar.gz": tarball({"top/batch": batch, "top/other": b"x"})}
    text = f"""
[[dataset]]
name = "toy"
title = "toy set"
folder = "toy"
tasks = ["toy_task"]
files = [
  {{ path = "labels", form = "gz", urls = ["{base}/missing.gz", "{base}/labels.gz"], md5 = "{hashlib.md5(plain).hexdigest()}", gz_sha256 = "{sha(handler.files['/labels.gz'])}" }},
  {{ path = "set-x", form = "tar", urls = ["{base}/set-x.tar.gz"], members = 2, members_sha256 = "{members_sha(records)}" }},
  {{ path = "batch", form = "member", urls = ["{base}/archive.tar.gz"], sha256 = "{sha(batch)}" }},
  {{ path = "extra", urls = ["{base}/extra"], optional = true }},
]
"""
    path = tmp_path / "manifest.toml"
    path.write_text(text)
    return path, plain, records


def test_fetch_downloads_every_form_and_the_copy_then_verifies(local_manifest, tmp_path):
    manifest, plain, records = local_manifest
    root = tmp_path / "data"
    assert not catalog.status("toy", root, manifest=manifest).found
    written = fetch("toy", root, manifest=manifest, progress=False)
    assert sorted(p.name for p in written) == ["batch", "labels.gz", "set-x.tar.gz"]
    state = catalog.status("toy", root, manifest=manifest)
    assert state.verified, state.summary()
    assert fetch("toy", root, manifest=manifest, progress=False) == []  # nothing left to do
    # the extracted forms verify too: a plain IDX file and a folder of records
    (root / "toy" / "labels.gz").unlink()
    (root / "toy" / "labels").write_bytes(plain)
    (root / "toy" / "set-x.tar.gz").unlink()
    for name, data in records.items():
        (root / "toy" / name).parent.mkdir(exist_ok=True)
        (root / "toy" / name).write_bytes(data)
    assert catalog.status("toy", root, manifest=manifest).verified
    (root / "toy" / "set-x" / "2.txt").write_bytes(b"changed")
    state = catalog.status("toy", root, manifest=manifest)
    assert state.found and not state.verified and "set-x: members" in state.summary()


def test_data_command_list_verify_fetch(local_manifest, tmp_path, capsys):
    manifest, _, _ = local_manifest
    root = tmp_path / "data"
    flags = ["--root", str(root), "--manifest", str(manifest)]
    assert main(["data", "list", *flags]) == 0
    assert "toy        missing" in capsys.readouterr().out
    assert main(["data", "verify", "toy", *flags]) == 1
    assert main(["data", "fetch", "toy", "--no-progress", *flags]) == 0
    assert "toy: 3 file(s) downloaded; verified" in capsys.readouterr().out
    assert main(["data", "verify", *flags]) == 0
    out = capsys.readouterr().out
    assert "toy: verified" in out and "missing   " in out and "(optional)" in out
    assert main(["data", "fetch", "nope", *flags]) == 2
    assert capsys.readouterr().err.strip().startswith("nodebench: error: unknown data set 'nope'; known: toy")


def test_data_fetch_refuses_a_root_that_is_a_file_or_empty(local_manifest, tmp_path, capsys, monkeypatch):
    """Checked before any request: a file as --root (a traceback before) and an empty one (the current folder)."""
    manifest, _, _ = local_manifest
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("x")
    fetch = ["data", "fetch", "toy", "--no-progress", "--manifest", str(manifest), "--root"]
    assert main([*fetch, "a_file"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--root 'a_file' is a file; give a folder" in err, err
    assert main([*fetch, ""]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--root: expected a path, got an empty string" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "manifest.toml"]  # nothing fetched


def test_a_failed_fetch_names_every_source_and_removes_only_the_folders_it_created(local_manifest, tmp_path,
                                                                                     capsys):
    """Only the last source's error was shown, and the data set's folder was left behind, empty."""
    manifest, _, _ = local_manifest
    handler = RangeHandler
    handler.files.pop("/labels.gz")
    root = tmp_path / "data"
    flags = ["data", "fetch", "toy", "--no-progress", "--root", str(root), "--manifest", str(manifest)]
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not download labels.gz from any of its 2 sources (" in err, err
    assert "/missing.gz: HTTP 404 Not Found, " in err and "/labels.gz: HTTP 404 Not Found)" in err, err
    assert not root.exists()
    (root / "mine").mkdir(parents=True)  # folders that were there stay, empty or not
    assert main(flags) == 2
    assert sorted(p.name for p in root.iterdir()) == ["mine"]
    capsys.readouterr()
    handler.files["/labels.gz"], handler.cut = PAYLOAD, 100  # a folder holding a partial download stays
    assert main(flags) == 2
    assert "rerun the same command to resume (100 bytes kept" in capsys.readouterr().err
    assert [p.name for p in (root / "toy").iterdir()] == ["labels.gz.part"]


def test_a_fetch_interrupted_before_any_byte_leaves_nothing_behind(local_manifest, tmp_path, monkeypatch):
    """Ctrl-C during the first read left an empty ``labels.gz.part`` and the folders it had created."""
    manifest, _, _ = local_manifest
    real_open = fetch_module._open

    def interrupt(size):
        raise KeyboardInterrupt

    def open_then_interrupt(url, offset, timeout):
        response = real_open(url, offset, timeout)
        response.read = interrupt
        return response

    monkeypatch.setattr(fetch_module, "_open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch("toy", tmp_path / "data", manifest=manifest, progress=False)
    assert not (tmp_path / "data").exists()


def test_an_archive_member_without_a_url_is_one_line(tmp_path, capsys):
    """A ``member`` file without urls raised IndexError (a traceback)."""
    manifest = tmp_path / "manifest.toml"
    manifest.write_text('[[dataset]]\nname = "toy"\nfolder = "toy"\nfiles = [{ path = "x", form = "member" }]\n')
    assert main(["data", "fetch", "toy", "--root", str(tmp_path / "data"), "--manifest", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert err == ("nodebench: error: no download URL for x in the data manifest; add urls to its entry, or put "
                   "the file in place yourself\n")
    assert not (tmp_path / "data").exists()


# -- a data folder that cannot be written (simulated: the tests run as root, who may write anywhere) ----------

def test_a_read_only_data_folder_is_named_with_its_source_before_any_request(local_manifest, tmp_path, capsys,
                                                                            monkeypatch):
    """It was called --root when $NODEBENCH_DATA chose it, and a read-only folder holding a verified copy failed
    `data fetch` (exit 2) though there was nothing to write."""
    manifest, _, _ = local_manifest
    root = tmp_path / "data"
    fetch("toy", root, manifest=manifest, progress=False)
    requests = len(RangeHandler.requests)
    monkeypatch.setenv("NODEBENCH_DATA", str(root))
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not str(path).startswith(str(root)))
    flags = ["data", "fetch", "toy", "--no-progress", "--manifest", str(manifest)]
    assert main(flags) == 0
    assert "toy: 0 file(s) downloaded; verified" in capsys.readouterr().out
    (root / "toy" / "batch").write_bytes(b"mine")
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert err == f"nodebench: error: the data folder ($NODEBENCH_DATA) '{root / 'toy'}' is not writable\n"
    assert (root / "toy" / "batch").read_bytes() == b"mine" and len(RangeHandler.requests) == requests


def test_a_data_folder_that_refuses_writes_is_one_line_and_loses_nothing(local_manifest, tmp_path, capsys,
                                                                        monkeypatch):
    """Permission denied on the ``.part`` was reported as a network failure ("check the network"); on an
    extracted archive member as an unreadable archive ("delete it and fetch again")."""
    manifest, _, _ = local_manifest
    root = tmp_path / "data"
    (root / "toy").mkdir(parents=True)
    (root / "toy" / "labels.gz.part").write_bytes(b"\x1f\x8b")
    (root / "toy" / "batch").write_bytes(b"mine")
    before = {p: p.read_bytes() for p in (root / "toy").iterdir()}

    denied = {"labels.gz.part"}

    def read_only(path, mode="r", *args, **kwargs):
        if Path(path).name in denied and any(c in mode for c in "wax+"):
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(fetch_module, "open", read_only, raising=False)
    flags = ["data", "fetch", "toy", "--no-progress", "--root", str(root), "--manifest", str(manifest)]
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert err == (f"nodebench: error: cannot write {root / 'toy' / 'labels.gz.part'}: Permission denied; make the "
                   "data folder writable (or free space) or choose another with --root or $NODEBENCH_DATA, then "
                   f"rerun the same command to resume (2 bytes kept in {root / 'toy' / 'labels.gz.part'})\n")
    assert {p: p.read_bytes() for p in (root / "toy").iterdir()} == before
    denied = {"batch.part"}  # the downloads go through; writing the archive member fails
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write {root / 'toy' / 'batch.part'}: Permission denied; " in err, err
    assert (root / "toy" / "batch").read_bytes() == b"mine"


# -- the gate before a sweep --------------------------------------------------------------------------------

def test_check_case_data_names_the_set_the_folder_and_the_fetch_command(local_manifest, tmp_path):
    manifest, _, _ = local_manifest
    root = tmp_path / "data"
    cases = [Case("toy_task", "rk4"), Case("cubic_spiral", "rk4")]
    with pytest.raises(UserError) as err:
        catalog.check_case_data(cases, root=root, manifest=manifest)
    message = str(err.value)
    assert "\n" not in message and "data set toy" in message and str(root / "toy") in message
    assert "`nodebench data fetch toy`" in message
    fetch("toy", root, manifest=manifest, progress=False)
    catalog.check_case_data(cases, root=root, manifest=manifest)
    (root / "toy" / "batch").write_bytes(b"tampered")
    with pytest.raises(UserError, match="--no-verify"):
        catalog.check_case_data(cases, root=root, manifest=manifest)
    catalog.check_case_data(cases, verify=False, root=root, manifest=manifest)


def test_run_without_the_data_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path / "empty"))
    out = tmp_path / "run"
    assert main(["run", "--task", "mnist_ode", "--method", "adjoint", "--iters", "300", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "data set mnist" in err and str(tmp_path / "empty" / "mnist") in err
    assert "nodebench data fetch mnist" in err and not out.exists()


def test_the_manifest_pins_the_published_checksums():
    known = catalog.catalog()
    mnist = {f.path: f for f in known["mnist"].files}
    assert mnist["train-images-idx3-ubyte"].gz_md5 == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert mnist["train-images-idx3-ubyte"].md5 == "6bbc9ace898e44ae57da46a324031adb"
    assert mnist["t10k-labels-idx1-ubyte"].gz_md5 == "ec29112dd5afa0611ce80d1b7f02629c"
    physionet = {f.path: f for f in known["physionet"].files}
    assert physionet["set-a"].members == 4000 and physionet["set-a"].members_sha256
    assert physionet["set-c"].optional and not physionet["set-c"].members_sha256
    assert all(not f.sha256 for name in ("power", "gas", "hepmass", "miniboone", "bsds300") for f in known[name].files)
    assert catalog.dataset_of_task("latent_ode_physionet").name == "physionet"
    assert catalog.dataset_of_task("digits_ode") is None


# -- bad manifests, roots and names -------------------------------------------------------------------------

NOT_HEX = "g" * 32
GOOD_ENTRY = {"name": '"tiny"', "folder": '"tiny"', "files": f'[{{ path = "a.bin", sha256 = "{"0" * 64}" }}]'}


def manifest_text(changes: dict) -> str:
    """One [[dataset]] entry: GOOD_ENTRY with keys replaced (a value None drops the key)."""
    entry = {k: v for k, v in (GOOD_ENTRY | changes).items() if v is not None}
    return "[[dataset]]\n" + "".join(f"{k} = {v}\n" for k, v in entry.items())


BAD_MANIFESTS = {
    "no folder": ({"folder": None}, "entry 1 lacks required key 'folder' (required: name, folder, files)"),
    "name misspelt": ({"name": None, "nmae": '"tiny"'},
                      ("entry 1 has unknown key 'nmae' (did you mean 'name'?); valid: name, folder, files, title, "
                       "tasks, note, archives")),
    "bad sha256": ({"files": '[{ path = "a.bin", sha256 = "xyz" }]'}, "file 1: sha256 'xyz' is not 64 hex digits"),
    "bad md5": ({"files": f'[{{ path = "a.bin", md5 = "{NOT_HEX}" }}]'}, f"md5 '{NOT_HEX}' is not 32 hex digits"),
    "file without a path": ({"files": '[{ urls = ["http://x"] }]'}, "file 1 lacks required key 'path'"),
    "unknown form": ({"files": '[{ path = "a", form = "zip" }]'}, "form 'zip' is unknown (valid: plain, gz, tar"),
    "folder escapes": ({"folder": '"../../escape"'}, "folder '../../escape' must be a relative path inside"),
    "files not a list": ({"files": '"a.bin"'}, "files is not a list of tables"),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_malformed_manifest_is_one_line_naming_the_entry_and_the_valid_keys(case, tmp_path, capsys):
    """A missing or misspelt key was reported as the bare KeyError text (``...: 'folder'``); a bad checksum
    and a folder outside the data directory were accepted."""
    changes, message = BAD_MANIFESTS[case]
    path = tmp_path / "manifest.toml"
    path.write_text(manifest_text(changes))
    assert main(["data", "list", "--manifest", str(path), "--root", str(tmp_path / "data")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured
    assert f"malformed data manifest {path}: [[dataset]] " in captured.err and message in captured.err, captured.err


def test_data_list_and_verify_refuse_a_root_that_is_a_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "a_file").write_text("x")
    for command in (["list"], ["verify"], ["verify", "mnist"]):
        assert main(["data", *command, "--root", str(tmp_path / "a_file")]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1, captured
        assert f"--root '{tmp_path / 'a_file'}' is a file; give a folder" in captured.err
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path / "a_file"))
    assert main(["data", "list"]) == 2
    assert "$NODEBENCH_DATA" in capsys.readouterr().err


def test_data_verify_of_an_empty_name_is_an_unknown_data_set(local_manifest, tmp_path, capsys):
    """``data verify ''`` verified every data set found (exit 1, "no data set found") instead."""
    manifest, _, _ = local_manifest
    assert main(["data", "verify", "", "--root", str(tmp_path / "data"), "--manifest", str(manifest)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip() == "nodebench: error: unknown data set ''; known: toy"


# -- interrupted transfers, shadowing copies, remedies --------------------------------------------------------

@pytest.mark.parametrize("pinned", [True, False])
def test_a_transfer_cut_short_is_kept_for_a_resume_and_never_installed(server, tmp_path, pinned):
    """urllib returns b"" when the connection drops before Content-Length: the partial file was checked as
    complete, so a pinned file was deleted as "the source has changed" and an unpinned one installed."""
    handler, base = server
    handler.files["/f.bin"], handler.cut = PAYLOAD, 5000
    checksum = {"sha256": sha(PAYLOAD)} if pinned else {}
    with pytest.raises(UserError, match="closed after 5000 of 16384 bytes; rerun the same command to resume "
                                        "[(]5000 bytes kept") as err:
        download_file(f"{base}/f.bin", tmp_path / "f.bin", progress=False, **checksum)
    assert "\n" not in str(err.value) and not (tmp_path / "f.bin").exists()
    assert (tmp_path / "f.bin.part").read_bytes() == PAYLOAD[:5000]
    handler.cut = None
    download_file(f"{base}/f.bin", tmp_path / "f.bin", progress=False, **checksum)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD and handler.requests[-1] == ("/f.bin", "bytes=5000-")


def test_a_failed_connection_does_not_claim_bytes_were_kept(tmp_path):
    with pytest.raises(UserError, match="nothing was kept; check the network and rerun the command"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", progress=False, timeout=2)
    assert list(tmp_path.iterdir()) == []


def test_fetch_moves_aside_a_mismatching_copy_that_would_shadow_the_fetched_one(local_manifest, tmp_path, capsys):
    """A truncated plain ``labels`` beside the fetched ``labels.gz`` is found first: fetch downloaded the .gz
    and then failed ("still does not verify") on every run."""
    manifest, plain, _ = local_manifest
    root, flags = tmp_path / "data", ["--root", str(tmp_path / "data"), "--manifest", str(manifest)]
    (root / "toy").mkdir(parents=True)
    (root / "toy" / "labels").write_bytes(plain[:-1])
    assert main(["data", "fetch", "toy", "--no-progress", *flags]) == 0
    assert "labels.mismatch" in capsys.readouterr().err
    assert (root / "toy" / "labels.mismatch").read_bytes() == plain[:-1]  # kept, not deleted
    assert catalog.status("toy", root, manifest=manifest).verified


def test_data_verify_says_which_file_fails_and_what_to_do(local_manifest, tmp_path, capsys):
    manifest, _, _ = local_manifest
    root, flags = tmp_path / "data", ["--root", str(tmp_path / "data"), "--manifest", str(manifest)]
    fetch("toy", root, manifest=manifest, progress=False)
    (root / "toy" / "batch").write_bytes(b"batch bytez")  # one byte changed
    assert main(["data", "verify", "toy", *flags]) == 1
    out = capsys.readouterr().out
    assert f"mismatch  {root / 'toy' / 'batch'}: sha256 " in out
    assert "to fix: `nodebench data fetch toy` downloads the missing files and those that do not match" in out


def test_an_unknown_data_set_name_gets_a_suggestion(local_manifest, tmp_path, capsys):
    manifest, _, _ = local_manifest
    assert main(["data", "fetch", "tyo", "--root", str(tmp_path / "data"), "--manifest", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert err == "nodebench: error: unknown data set 'tyo' (did you mean 'toy'?); known: toy\n"
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), 1e10, True, "60"])
def test_fetch_refuses_a_timeout_a_socket_cannot_take(tmp_path, timeout):
    """``fetch(timeout=1e10)`` overflowed the platform's time_t inside ``socket.settimeout`` (a traceback)."""
    with pytest.raises(UserError, match=r"timeout must be a number of seconds in \(0, 86400\]"):
        fetch("mnist", tmp_path, timeout=timeout)
    assert not any(tmp_path.iterdir())


def test_a_wrong_archive_left_in_place_is_moved_aside_and_fetched_again(server, tmp_path, capsys):
    """An archive that fails its pinned checksum (a stale or cut copy) was extracted as it was, so the member
    never verified ("still does not verify after the fetch") on every rerun; it is kept aside and refetched."""
    handler, base = server
    batch, stale = b"batch bytes", tarball({"top/batch": b"old bytes"})
    handler.files |= {"/archive.tar.gz": tarball({"top/batch": batch})}
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(f"""
[[dataset]]
name = "toy"
folder = "toy"
archives = {{ "{base}/archive.tar.gz" = {{ sha256 = "{sha(handler.files['/archive.tar.gz'])}" }} }}
files = [{{ path = "batch", form = "member", urls = ["{base}/archive.tar.gz"], sha256 = "{sha(batch)}" }}]
""")
    folder = tmp_path / "data" / "toy"
    folder.mkdir(parents=True)
    (folder / "archive.tar.gz").write_bytes(stale)
    assert [p.name for p in fetch("toy", tmp_path / "data", manifest=manifest, progress=False)] == ["batch"]
    assert (folder / "batch").read_bytes() == batch
    assert (folder / "archive.tar.gz.mismatch").read_bytes() == stale  # kept, never deleted
    assert f"moved it to {folder / 'archive.tar.gz.mismatch'}" in capsys.readouterr().err
