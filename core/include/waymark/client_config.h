// Every constant of the client's behaviour, in one struct with its defaults.
// Pure data; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "waymark/frames.h"

namespace waymark {

struct ClientConfig {
  // Reconnect backoff: exponential with full jitter, delay = uniform[0, min(cap, base * 2^n)]
  // where n counts failed attempts since the last healthy connection.
  TimeMs reconnect_base_ms = 250;
  TimeMs reconnect_cap_ms = 30000;
  // A connection that stayed online this long resets n to 0.
  TimeMs healthy_after_ms = 10000;

  // After the edge refused the token, with token refresh on: a new token is asked for at once
  // the first time since the session was last online; the n-th retry (n >= 1) after
  // uniform[c/2, c], c = min(cap, base * 2^(n-1)): equal jitter, so a token source that keeps
  // failing at once is never asked in a tight loop (backoff.h).
  TimeMs token_retry_base_ms = 1000;
  TimeMs token_retry_cap_ms = 60000;

  // Heartbeat until the edge's welcome says otherwise: ping every hb, dead after 2 x hb.
  TimeMs default_heartbeat_ms = 15000;
  // From OpenSocket to welcome; past it the attempt counts as failed.
  TimeMs handshake_timeout_ms = 10000;

  // A send refused with retry:true is retried after uniform[0, min(cap, base * 2^attempts)].
  TimeMs send_retry_base_ms = 250;
  TimeMs send_retry_cap_ms = 30000;

  // Sends on the wire without an ack yet, per connection; the rest wait in the outbox.
  std::size_t max_in_flight = 256;

  // A hist sent to fill a gap asks for at most this many messages.
  std::uint32_t gap_fill_limit = 500;
  // A gap fill or history request unanswered this long is sent again (gap) or failed (app).
  TimeMs request_timeout_ms = 10000;

  // Until the welcome states max_frame, sends are checked against this.
  std::size_t default_max_frame = 65536;

  // Send rcpt{kind:delivered} for the contiguous cursor after each batch of msgs.
  bool send_delivered_receipts = true;

  // Another user's typing:on shown this long without a refresh turns off by itself.
  TimeMs typing_expiry_ms = 6000;

  // Own sequenced rows remembered per conversation to apply others' receipts to them.
  std::size_t max_tracked_own_rows = 10000;

  // hello.provisional: show a relaying edge's provisional msgs (stored there, no seq yet) as
  // rows in state stored until their seq arrives. Off: only sequenced msgs, as a v1 client.
  bool provisional = false;

  // Set: this session is a relaying edge's upstream link (upstream_op.h's relay_link_config):
  // hello.relay names the node and tenant; sends, receipts and typing carry "as"; the session
  // keeps no rows, unread counts or receipts of its own, and of its sends reports only the
  // failed rows (RowEvent, state failed: the relay's dead letters).
  std::optional<RelayHello> relay;
  // A relay link's receipts waiting for the root's echo, at most this many.
  std::size_t max_relayed_receipts = 100000;
};

}  // namespace waymark
