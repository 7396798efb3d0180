"""User-facing errors: each one becomes a single line on stderr and exit status 2."""


class UserError(Exception):
    """Bad input from the user (arguments, files, configs); never a bug in ofahw."""


class ConfigError(UserError):
    """A subnet config that does not belong to the space."""


class TargetError(UserError):
    """A target that is unknown, malformed or unusable."""


class LutError(UserError):
    """A lookup table that is malformed, incompatible or lacks an entry."""


class Incomplete(Exception):
    """Work stopped before the end (a budget ran out); what was done is saved and a rerun resumes."""
