from genesis.cli import main

raise SystemExit(main())
