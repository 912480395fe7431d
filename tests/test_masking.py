"""Secret values revealed in this process are masked in log records and error output."""

from __future__ import annotations

import logging

from penguinctl.cli.errors import handle
from penguinctl.dkim import generate_rsa
from penguinctl.errors import ProviderError
from penguinctl.masking import MASK, install, mask, registry
from penguinctl.providers.secrets.base import SecretValue


def test_revealed_values_are_masked_in_log_records_of_any_logger(caplog):
    install()
    token = SecretValue("cf-token-Zq7xW2mN9pL4vR8s-masking").reveal()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("httpx").debug("Authorization: Bearer %s", token)
        logging.getLogger("penguinctl.x").warning("failed with " + token)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert token not in text and text.count(MASK) == 2


def test_a_private_key_is_masked_whole_and_line_by_line():
    pem = generate_rsa(1024).private_pem
    SecretValue(pem).reveal()
    assert mask(f"key: {pem}") == f"key: {MASK}"
    line = pem.splitlines()[3]
    assert mask(f"partial {line} leak") == f"partial {MASK} leak"


def test_short_values_are_not_registered():
    before = len(registry())
    SecretValue("yes").reveal()
    assert len(registry()) == before
    assert mask("yes we can") == "yes we can"


def test_error_lines_and_debug_logs_are_masked(tmp_path, capsys):
    secret = SecretValue("hunter2-hunter2-hunter2").reveal()
    code = handle(ProviderError(f"login failed for {secret}"), debug=False, log_dir=None, mask=mask)
    assert code == 5
    err = capsys.readouterr().err
    assert secret not in err and MASK in err
    handle(RuntimeError(f"boom {secret}"), debug=False, log_dir=tmp_path, mask=mask)
    (log,) = tmp_path.glob("penguinctl-debug-*.log")
    assert secret not in log.read_text() and secret not in capsys.readouterr().err
    handle(RuntimeError(f"boom {secret}"), debug=True, log_dir=tmp_path, mask=mask)
    assert secret not in capsys.readouterr().err
