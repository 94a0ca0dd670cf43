"""What the tests share that is not a fixture: server processes, waiting, fake servers, the
protocol clients, the browser, the fuzz drivers."""
