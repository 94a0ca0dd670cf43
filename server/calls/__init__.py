"""Voice calls (CONTRACT §2): the call record and its status machine, the spoken
conversation, sentiment, and the REST `conversation/process` flow."""
