from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from statek.errors import ConfigurationError
from statek.settings import StatekSettings, get_statek_settings, reset_settings_cache


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("STATEK_DEFAULT_PROVIDER", raising=False)
    reset_settings_cache()
    yield
    reset_settings_cache()  # later tests must not inherit this test's environment


def test_environment_is_read_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEK_MAX_TURNS", "7")
    monkeypatch.setenv("STATEK_DEFAULT_PROVIDER", "openai")
    s = get_statek_settings()
    assert (s.max_turns, s.default_provider) == (7, "openai")


def test_explicit_arguments_beat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEK_MAX_TURNS", "7")
    assert get_statek_settings(max_turns=3).max_turns == 3


def test_dotenv_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("STATEK_LOG_LEVEL=debug\n")
    assert StatekSettings.build().log_level == "DEBUG"


def test_bad_env_value_names_field_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEK_MAX_TURNS", "many")
    with pytest.raises(ConfigurationError) as info:
        get_statek_settings()
    assert "max_turns" in str(info.value)
    assert "STATEK_MAX_TURNS" in str(info.value)
    assert "'many'" in str(info.value)


def test_bad_argument_is_reported_as_argument() -> None:
    with pytest.raises(ConfigurationError, match=r"commit_interval.*from argument"):
        StatekSettings.build(commit_interval=-1)


def test_prompt_and_warmup_defs_load_from_dirs(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "writer.md").write_text("You write.")
    (prompts / "notes.json").write_text("{}")
    warmups = tmp_path / "warmups"
    warmups.mkdir()
    (warmups / "writer.py").write_text("x = 1\n")
    s = StatekSettings.build(prompt_files_dir=prompts, warmup_defs_dir=warmups)
    assert s.prompt_defs == {"writer": "You write."}
    assert s.warmup_defs() == {"writer": "x = 1\n"}


def test_missing_prompt_dir_gives_no_defs(tmp_path: Path) -> None:
    assert StatekSettings.build(prompt_files_dir=tmp_path / "nope").prompt_defs == {}


def test_allowed_imports_accepts_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEK_ALLOWED_IMPORTS", "math, json")
    assert get_statek_settings().allowed_imports == ("math", "json")


def test_api_keys_are_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEK_OPENAI_API_KEY", "sk-test")
    s = get_statek_settings()
    assert s.openai_api_key is not None
    assert s.openai_api_key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(s)


def test_no_default_provider_unless_chosen() -> None:
    """The offline provider is never a silent default: unset means jobs naming no provider
    fail (see tests/store/test_provider_choice.py)."""
    assert StatekSettings.build().default_provider is None


@pytest.mark.parametrize(("value", "expected"), [("scripted", "scripted"), (" openai ", "openai"),
                                                 ("", None), ("   ", None)])
def test_default_provider_from_environment(monkeypatch: pytest.MonkeyPatch, value: str,
                                           expected: str | None) -> None:
    monkeypatch.setenv("STATEK_DEFAULT_PROVIDER", value)
    assert StatekSettings.build().default_provider == expected


def test_provider_max_response_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert StatekSettings.build().provider_max_response_bytes == 32 * 1024 * 1024
    monkeypatch.setenv("STATEK_PROVIDER_MAX_RESPONSE_BYTES", "4096")
    assert StatekSettings.build().provider_max_response_bytes == 4096
    monkeypatch.setenv("STATEK_PROVIDER_MAX_RESPONSE_BYTES", "0")
    with pytest.raises(ConfigurationError, match="STATEK_PROVIDER_MAX_RESPONSE_BYTES"):
        StatekSettings.build()


def test_provider_max_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    assert StatekSettings.build().provider_max_connections == 100
    monkeypatch.setenv("STATEK_PROVIDER_MAX_CONNECTIONS", "5000")
    assert StatekSettings.build().provider_max_connections == 5000
    monkeypatch.setenv("STATEK_PROVIDER_MAX_CONNECTIONS", "0")
    with pytest.raises(ConfigurationError, match="STATEK_PROVIDER_MAX_CONNECTIONS"):
        StatekSettings.build()


def test_commit_window_bounds() -> None:
    with pytest.raises(ConfigurationError,
                       match=r"commit_interval_max \(0.5\) is below commit_interval \(1\)"):
        StatekSettings.build(commit_interval=1.0, commit_interval_max=0.5)
    # a commit_interval above the default longest window alone is a fixed window, as before
    assert StatekSettings.build(commit_interval=30.0).commit_interval == 30.0
    fixed = StatekSettings.build(commit_interval=0.1, commit_interval_max=0.1)
    assert fixed.commit_interval_max == 0.1


def test_an_unknown_statek_variable_is_named_once_with_the_closest_setting(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A typo (STATEK_STEP_TIMOUT=5) was ignored in silence: the worker ran with the
    default step timeout."""
    from statek import settings as settings_module

    monkeypatch.setattr(settings_module, "_warned", set())
    monkeypatch.setenv("STATEK_STEP_TIMOUT", "5")
    monkeypatch.setenv("STATEK_NO_SUCH_THING_AT_ALL", "1")
    monkeypatch.setenv("STATEK_NO_EXTENSIONS", "1")  # read by the import selector
    with caplog.at_level("WARNING", logger="statek.settings"):
        StatekSettings.build()
        StatekSettings.build()
    assert sorted(r.getMessage() for r in caplog.records) == [  # once each, env order
        "environment variable STATEK_NO_SUCH_THING_AT_ALL is not a statek setting and is "
        "ignored",
        "environment variable STATEK_STEP_TIMOUT is not a statek setting and is ignored; "
        "did you mean STATEK_STEP_TIMEOUT?"]


def test_store_cache_mb_bounds_dbzero_cache(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's memory grew to dbzero's default 2 GiB cache with no setting to bound it."""
    import dbzero as db0

    import statek

    monkeypatch.setenv("STATEK_STORE_CACHE_MB", "64")
    reset_settings_cache()
    statek.close()
    statek.init(StatekSettings.build())
    try:
        statek.open_default_store(tmp_path / "store")
        assert db0.get_cache_stats()["capacity"] == 64 * 2**20
    finally:
        statek.close()
        reset_settings_cache()
    with pytest.raises(ConfigurationError, match="store_cache_mb"):
        StatekSettings.build(store_cache_mb=1)


def test_an_unknown_variable_in_dotenv_is_named_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from statek import settings as settings_module

    monkeypatch.setattr(settings_module, "_warned", set())
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("STATEK_STEP_TIMOUT=5\nSTATEK_MAX_TURNS=7\nOTHER=1\n")
    with caplog.at_level("WARNING", logger="statek.settings"):
        assert StatekSettings.build().max_turns == 7
    assert [r.getMessage() for r in caplog.records] == [
        "environment variable STATEK_STEP_TIMOUT (in .env) is not a statek setting and is "
        "ignored; did you mean STATEK_STEP_TIMEOUT?"]
