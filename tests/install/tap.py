"""tap.py: TAP output for the tests of tests/install: a plan, one line per check, skips with
their reason; the exit status says whether every check held."""
import sys


class Tap:
    def __init__(self, planned):
        self.n = 0
        self.failed = 0
        print('1..%d' % planned, flush=True)

    def ok(self, cond, what, detail=''):
        self.n += 1
        print('%s %d - %s' % ('ok' if cond else 'not ok', self.n, what), flush=True)
        if not cond:
            self.failed += 1
            for line in str(detail).splitlines()[-20:]:
                print('#   ' + line, flush=True)
        return cond

    def skip(self, what, why):
        self.n += 1
        print('ok %d - %s # SKIP %s' % (self.n, what, why), flush=True)

    def done(self):
        sys.exit(1 if self.failed else 0)


def skip_all(why):
    print('1..0 # SKIP ' + why, flush=True)
    sys.exit(0)
