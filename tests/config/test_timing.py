from typing import Any

from keeptrusts_authz.cli.main import main
from keeptrusts_authz.config import parse_config

GROUP = {"name": "eng", "api_key": "kt_x", "wallet_team_id": "team_eng"}


def cfg(**kw: Any) -> Any:
    return parse_config({"consumer_groups": [GROUP], **kw})


def test_grace_covers_held_requests() -> None:
    plain = cfg(server={"shutdown_grace_seconds": 10})
    assert plain.shutdown_grace_seconds() == 10
    held = cfg(
        server={"shutdown_grace_seconds": 10},
        enforcement={"on_insufficient": "hold", "hold_timeout_seconds": 20},
        gateway={"check_timeout_seconds": 2},
    )
    assert held.shutdown_grace_seconds() == 22


def test_reservation_ttl_shorter_than_a_request_is_warned() -> None:
    assert cfg().timing_warnings() == []
    short = cfg(
        enforcement={"reservation_ttl_seconds": 60},
        providers=[{"name": "openai", "url": "https://api.openai.com", "timeout_seconds": 120}],
    )
    (warning,) = short.timing_warnings()
    assert warning.startswith("enforcement.reservation_ttl_seconds: 60 ")


def test_check_config_prints_the_warning(tmp_path: Any, capsys: Any) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(
        "consumer_groups: [{name: eng, api_key: kt_x, wallet_team_id: team_eng}]\n"
        "enforcement: {reservation_ttl_seconds: 5}\n"
        "providers: [{name: openai, url: 'https://api.openai.com'}]\n"
    )
    assert main(["check-config", str(path)]) == 0
    captured = capsys.readouterr()
    assert "reservation_ttl_seconds" in captured.out + captured.err


def test_closed_reservation_ttl_shorter_than_the_reservation_ttl_is_warned() -> None:
    assert cfg().enforcement.closed_reservation_ttl_seconds == 6 * 3600
    short = cfg(
        enforcement={"reservation_ttl_seconds": 3600, "closed_reservation_ttl_seconds": 600}
    )
    (warning,) = short.timing_warnings()
    assert warning.startswith("enforcement.closed_reservation_ttl_seconds: 600 is shorter")


def test_check_config_warns_about_a_short_closed_reservation_ttl(
    tmp_path: Any, capsys: Any
) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(
        "consumer_groups: [{name: eng, api_key: kt_x, wallet_team_id: team_eng}]\n"
        "enforcement: {reservation_ttl_seconds: 900, closed_reservation_ttl_seconds: 120}\n"
    )
    assert main(["check-config", str(path)]) == 0
    captured = capsys.readouterr()
    assert "closed_reservation_ttl_seconds: 120" in captured.out + captured.err
