"""Pure optimizer: the site LP built from `define_*` functions, solved by HiGHS behind the
`Solver` port; forecasts from past prices only; four strategies behind one interface. No I/O,
no clock."""
