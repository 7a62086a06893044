import json

from click.testing import CliRunner

from udc.sdk.cli.main import info_main, main


def test_udc_info_paper_prints_the_table():
    result = CliRunner().invoke(main, ["info", "--config", "paper"])
    assert result.exit_code == 0, result.output
    for name in ("clip_image", "clip_text", "fpen_s1", "fpen_s2", "denoiser", "udcformer", "on-device total"):
        assert name in result.output
    assert "87,849,216" in result.output and "4.41 G" in result.output


def test_udc_info_json_and_alias():
    result = CliRunner().invoke(info_main, ["--config", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["config"] == "tiny"
    assert {r["component"] for r in data["components"]} >= {"clip_image", "denoiser", "udcformer"}


def test_udc_check_runs_end_to_end():
    result = CliRunner().invoke(main, ["check", "--config", "tiny"])
    assert result.exit_code == 0, result.output
    assert "same noise -> same output: True" in result.output
    assert result.output.count(" ok ") == 4


def test_help_lists_the_verbs():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "info" in result.output and "check" in result.output
    bad = CliRunner().invoke(main, ["info", "--config", "huge"])
    assert bad.exit_code == 2 and "huge" in bad.output
