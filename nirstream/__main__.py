from nirstream.cli import main

raise SystemExit(main())
