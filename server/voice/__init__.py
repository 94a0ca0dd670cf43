"""The voice call pipeline: the AI joins a WebRTC call as a peer (CONTRACT §2).

Read top to bottom, one stage per module: `peer` (the RTCPeerConnection) and `receive` (its
receiver, tuned to decode each frame on arrival), `inbound` (frames from the caller's
track), `resample` (16 kHz mono), `vad` (speech or not, per 32 ms: a loudness gate, then
Silero), `turns` (onset, pause, end of a turn), `endpoint` (Smart Turn: is the turn over?),
`bargein` (the caller over the AI), `speaker` (TTS into the outgoing track and the
`ai-audio-response` event), `clips` and `opus` (TTS audio decoded and encoded a step at a
time), `outbound` (the paced outgoing track), wired by `pipeline`; `models` finds and checks
the ONNX models, `latency` times each turn, `call` ties one AI peer to one call, `registry`
holds the live ones.
"""
