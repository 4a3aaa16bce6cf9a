"""The liveness command line: ``fastface liveness``, ``verify --liveness`` and ``identify
--liveness`` on the authors' samples (a poster and a tablet of the same kind of scene, and a live
person who is also the poster's subject)."""
import json
import subprocess
import sys

import pytest

from shared_data import LIVENESS_SAMPLES, require

pytestmark = require(LIVENESS_SAMPLES)
F1, F2, T1 = (LIVENESS_SAMPLES / n for n in ("image_F1.jpg", "image_F2.jpg", "image_T1.jpg"))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "fastface", *map(str, args)], capture_output=True, text=True)


def test_liveness_command_scores_every_photo():
    out = cli("liveness", F1, F2, T1, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["threshold"] == 0.5
    live = {p["image"]: [f["live"] for f in p["faces"]] for p in report["photos"]}
    assert live == {str(F1): [False], str(F2): [False], str(T1): [True]}
    text = cli("liveness", F2, T1)
    assert text.returncode == 0 and "SPOOF" in text.stdout.splitlines()[0] and "live" in text.stdout.splitlines()[1]
    missing = cli("liveness", LIVENESS_SAMPLES / "nope.jpg")
    assert missing.returncode == 2 and "no image at" in missing.stderr


def test_verify_refuses_a_match_on_a_spoof():
    # The poster shows the same person as the live photo: without liveness they match.
    plain = json.loads(cli("verify", F1, T1, "--threads", "1", "--json").stdout)
    assert plain["same"] is True and "liveness" not in plain
    checked = cli("verify", F1, T1, "--liveness", "--threads", "1", "--json")
    assert checked.returncode == 0, checked.stderr
    result = json.loads(checked.stdout)
    assert result["same"] is False and result["spoof"] == [str(F1)] and result["score"] == plain["score"]
    assert result["liveness"][0] < 0.5 < result["liveness"][1]
    live = json.loads(cli("verify", T1, T1, "--liveness", "--threads", "1", "--json").stdout)
    assert live["same"] is True and live["spoof"] == []
    assert "refused" in cli("verify", F1, T1, "--liveness", "--threads", "1").stdout


def test_identify_refuses_a_spoofed_enrolled_person(tmp_path):
    people = tmp_path / "people" / "subject"
    people.mkdir(parents=True)
    (people / "live.jpg").symlink_to(T1)
    gallery = tmp_path / "g.ffg"
    enrolled = cli("enroll", gallery, tmp_path / "people", "--threads", "1")
    assert enrolled.returncode == 0, enrolled.stderr
    plain = json.loads(cli("identify", gallery, F1, "--threads", "1", "--json").stdout)
    assert plain["faces"][0]["match"] == "subject"
    out = cli("identify", gallery, F1, "--threads", "1", "--json", "--liveness")
    assert out.returncode == 0, out.stderr
    face = json.loads(out.stdout)["faces"][0]
    assert face["match"] is None and face["refused"] == "subject" and face["live"] is False
    live = json.loads(cli("identify", gallery, T1, "--threads", "1", "--json", "--liveness").stdout)["faces"][0]
    assert live["match"] == "subject" and live["live"] is True and "refused" not in live


@pytest.mark.parametrize("command", ["verify", "identify", "watch"])
def test_liveness_option_is_offered(command):
    assert "--liveness" in cli(command, "--help").stdout


def test_watch_reports_a_spoof_and_never_identifies_it(tmp_path):
    import cv2

    people = tmp_path / "people" / "subject"
    people.mkdir(parents=True)
    (people / "live.jpg").symlink_to(T1)
    gallery = tmp_path / "g.ffg"
    assert cli("enroll", gallery, tmp_path / "people", "--threads", "1").returncode == 0
    poster = cv2.imread(str(F1))
    video = tmp_path / "poster.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (poster.shape[1], poster.shape[0]))
    for _ in range(5):
        writer.write(poster)
    writer.release()
    common = ["watch", video, "--gallery", gallery, "--json", "--stats-every", "0", "--threads", "1"]
    plain = [json.loads(line)["event"] for line in cli(*common).stdout.splitlines()]
    assert "identified" in plain
    done = cli(*common, "--liveness")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["event"] for line in lines] == ["started", "spoof", "lost", "end"]
    assert lines[1]["liveness"] < 0.5 and "liveness" in lines[2]
    assert "SPOOF" in cli(*[c for c in common if c != "--json"], "--liveness").stdout
