from minibuild.cli import main

raise SystemExit(main())
