"""The live event feed over HTTP: the list, the stream and its tickets, for readers with
a credential. Facts are recorded by app/events; this package only serves them."""
