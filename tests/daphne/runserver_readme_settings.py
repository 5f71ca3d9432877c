"""The demo with the README's LOGGING (the ``wsreject`` logger to a console handler,
propagating), for the test that runserver prints one line per denial."""

from project.settings import *  # noqa: F403

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"wsreject": {"handlers": ["console"], "level": "INFO"}},
}
