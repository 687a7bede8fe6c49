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


def test_the_handler_is_installed_once_and_follows_a_replaced_stdout(capsys):
    assert logs.install() is logs.HANDLER
    handlers = logging.getLogger("keras_dcgan").handlers
    assert sum(isinstance(h, logs.PackageHandler) for h in handlers) == 1
    logs.notice(logging.getLogger("keras_dcgan"), "to the current stdout")
    assert capsys.readouterr().out == "to the current stdout\n"
