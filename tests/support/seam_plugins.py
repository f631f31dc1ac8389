"""Test plugins the seam tests share."""

from aoti_hooks import hookimpl


class Materialize:
    """Gives argument 0 real storage for one run, as kv_elide will."""

    def __init__(self):
        self.log = []

    @hookimpl(wrapper=True)
    def autotune_arguments(self, args, session):
        self.log.append(("before", args[0].untyped_storage().nbytes()))
        args[0].untyped_storage().resize_(args[0].numel() * args[0].element_size())
        try:
            return (yield)
        finally:
            args[0].untyped_storage().resize_(0)
            self.log.append(("after", args[0].untyped_storage().nbytes()))
