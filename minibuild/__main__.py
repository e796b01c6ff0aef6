from minibuild.cli.main import main

raise SystemExit(main())
