"""Settings: defaults, then a TOML file, then ``THINGPORT_*`` variables, then command-line overrides."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thingport.cli import cli
from thingport.settings import Settings


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults() -> None:
    s = Settings.load(env={})
    assert s == Settings()
    assert s.http_port == 8080 and s.host == "127.0.0.1" and s.data_dir == Path("./data")
    assert s.max_page_size == 1000 and s.signature_window_s == 300 and s.sqlite_synchronous == "NORMAL"
    assert s.db_url == f"sqlite+aiosqlite:///{(Path('./data') / 'thingport.db').resolve()}"
    assert s.key_file == Path("data/master.key") and s.operator_token_file == Path("data/operator.token")


def test_environment_variables() -> None:
    s = Settings.load(env={"THINGPORT_HTTP_PORT": "9000", "THINGPORT_DATA_DIR": "/srv/tp",
                           "THINGPORT_DATABASE_URL": "postgresql+asyncpg://u:p@db/tp",
                           "THINGPORT_MASTER_KEY_FILE": "/etc/tp/master.key", "THINGPORT_UNRELATED": "x",
                           "HTTP_PORT": "1"})
    assert s.http_port == 9000 and s.data_dir == Path("/srv/tp")
    assert s.db_url == "postgresql+asyncpg://u:p@db/tp"
    assert s.key_file == Path("/etc/tp/master.key")


def test_every_field_has_an_environment_variable() -> None:
    for f in fields(Settings):
        value = {"int": "7", "float": "7.5"}.get(str(f.type), "x")
        s = Settings.load(env={f"THINGPORT_{f.name.upper()}": value})
        assert str(getattr(s, f.name)) == value, f.name


def test_toml_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "tp.toml", 'http_port = 9100\nhost = "0.0.0.0"\ndata_dir = "/var/lib/tp"\n'
                                      "max_batch_size = 50\n")
    s = Settings.load(cfg, env={})
    assert s.http_port == 9100 and s.host == "0.0.0.0" and s.data_dir == Path("/var/lib/tp")
    assert s.max_batch_size == 50 and s.max_page_size == 1000


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    cfg = write(tmp_path / "tp.toml", "http_port = 9200\n")
    assert Settings.load(env={"THINGPORT_CONFIG": str(cfg)}).http_port == 9200


def test_precedence(tmp_path: Path) -> None:
    cfg = write(tmp_path / "tp.toml", 'http_port = 9100\nhost = "10.0.0.1"\nlog_level = "debug"\n')
    env = {"THINGPORT_HTTP_PORT": "9300", "THINGPORT_HOST": "10.0.0.2"}
    s = Settings.load(cfg, env=env, host="10.0.0.3", data_dir=None)
    assert s.log_level == "debug"  # file over default
    assert s.http_port == 9300  # environment over file
    assert s.host == "10.0.0.3"  # override over environment
    assert s.data_dir == Path("./data")  # a None override changes nothing


def test_unknown_setting_is_an_error(tmp_path: Path) -> None:
    cfg = write(tmp_path / "tp.toml", "http_prot = 9100\n")
    with pytest.raises(ValueError, match="unknown setting 'http_prot'"):
        Settings.load(cfg, env={})
    with pytest.raises(ValueError, match="unknown setting 'nope'"):
        Settings.load(env={}, nope=1)


def test_malformed_integer_names_the_setting() -> None:
    with pytest.raises(ValueError, match="http_port"):
        Settings.load(env={"THINGPORT_HTTP_PORT": "eighty"})


def test_cli_reports_bad_settings_without_a_traceback(tmp_path: Path) -> None:
    cfg = write(tmp_path / "tp.toml", "http_prot = 9100\n")
    result = CliRunner().invoke(cli, ["init", "--data-dir", str(tmp_path / "d"), "--config", str(cfg)])
    assert result.exit_code == 2 and "unknown setting 'http_prot'" in result.stderr
    missing = CliRunner().invoke(cli, ["init", "--config", str(tmp_path / "none.toml")])
    assert missing.exit_code == 2 and "none.toml" in missing.stderr
    bad = CliRunner().invoke(cli, ["org", "list", "--data-dir", str(tmp_path / "d")],
                             env={"THINGPORT_HTTP_PORT": "eighty"})
    assert bad.exit_code == 2 and "http_port" in bad.stderr


def test_durations_may_be_fractional(tmp_path: Path) -> None:
    s = Settings.load(env={"THINGPORT_HTTP_HEADER_TIMEOUT_S": "2.5"})
    assert s.http_header_timeout_s == 2.5 and s.http_body_timeout_s == 30.0
    with pytest.raises(ValueError, match=r"http_body_timeout_s.*a number"):
        Settings.load(env={"THINGPORT_HTTP_BODY_TIMEOUT_S": "soon"})
