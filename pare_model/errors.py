"""Exceptions for problems a user can fix; their messages say what is wrong and how to fix it.

The ``pare`` command prints these without a traceback. Anything else is a bug and keeps its
traceback.
"""


class UserFacingError(Exception):
    """A problem with the user's input, files or configuration."""


class AssetError(UserFacingError):
    """A body model asset folder or file is missing, incomplete or malformed."""


class PickleLoadError(AssetError):
    """A pickle file could not be read."""


class UnsafePickleError(PickleLoadError):
    """A pickle file asks to create an object that is not plain data, or holds data shaped to exhaust memory."""
