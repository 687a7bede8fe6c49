import logging

import keras_dcgan  # noqa: F401 (installs the package handler)
from keras_dcgan import logs


def test_notices_and_warnings_reach_stdout_details_do_not(capsys, caplog):
    log = logging.getLogger("keras_dcgan.some_module")
    caplog.set_level(logging.INFO, logger="keras_dcgan")
    logs.notice(log, "Continuing from %s.", "ckpt-4")
    log.info("a detail")
    log.warning("cannot lock %s", "run.lock")
    assert capsys.readouterr().out == "Continuing from ckpt-4.\nWarning: cannot lock run.lock\n"
    # The records still reach the root logger (pytest's caplog, absl, a user's handlers).
    assert [r.levelname for r in caplog.records] == ["NOTICE", "INFO", "WARNING"]


def test_the_package_logger_does_not_repeat_its_messages_through_the_root_logger():
    import subprocess
    import sys

    code = (
        "import logging, keras_dcgan; from keras_dcgan import logs; "
        "logging.warning('a root warning installs a root handler, as libraries do'); "
        "logs.notice(logging.getLogger('keras_dcgan.x'), 'once')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout == "once\n" and "once" not in out.stderr, out


def test_the_handler_is_installed_once_and_follows_a_replaced_stdout(capsys):
    assert logs.install() is logs.HANDLER
    handlers = logging.getLogger("keras_dcgan").handlers
    assert sum(isinstance(h, logs.PackageHandler) for h in handlers) == 1
    logs.notice(logging.getLogger("keras_dcgan"), "to the current stdout")
    assert capsys.readouterr().out == "to the current stdout\n"
