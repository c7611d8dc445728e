import subprocess
import sys

from overconf.cli import main


def test_help_lists_the_subcommands(capsys):
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    for cmd in ("run", "list", "cache"):
        assert cmd in out


def test_bad_config_exits_with_a_message(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: x\nattacks: [max_scor]\n")
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "unknown attack 'max_scor'" in err and "allowed" in err


def test_list_shows_registered_components(capsys):
    assert main(["list", "attacks"]) == 0
    out = capsys.readouterr().out
    assert "max_score" in out and "salem" in out


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "overconf", "list", "sources"], capture_output=True, text=True)
    assert r.returncode == 0 and "permuted" in r.stdout
