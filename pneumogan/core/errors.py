"""The two failures a user can fix: a bad input file and a bad param. Stages exit 2 on both."""


class DataError(ValueError):
    """An input file is missing, unreadable or breaks the data contract."""


class ParamsError(ValueError):
    """A params file is missing, malformed or holds a value outside its allowed range."""
