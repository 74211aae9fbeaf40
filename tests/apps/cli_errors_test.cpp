// Bad input to every subcommand: one clear error line and a non-zero exit (written with the compiler).
