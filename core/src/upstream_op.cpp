// A relay's upstream work carried out on its link's ClientSession.
#include "waymark/upstream_op.h"

#include <algorithm>

#include "overloaded.h"

namespace waymark {

const std::string& upstream_tenant(const UpstreamOp& op) {
  return std::visit([](const auto& o) -> const std::string& { return o.tenant; }, op);
}

ClientConfig relay_link_config(const std::string& node, const std::string& tenant,
                               ClientConfig base) {
  base.relay = RelayHello{node, tenant};
  base.provisional = false;
  base.send_delivered_receipts = false;
  // A partition's heal should find the link back within a second, whatever its length: one
  // relay per tenant retrying each second at most (full jitter) is nothing for an upstream,
  // while the browser's 30 s cap left relays up to 30 s behind after a long cut.
  base.reconnect_cap_ms = std::min<TimeMs>(base.reconnect_cap_ms, kRelayReconnectCapMs);
  return base;
}

void apply_upstream(ClientSession& link, const UpstreamOp& op, TimeMs now) {
  std::visit(Overloaded{
                 [&](const UpstreamSend& send) {
                   // requeue is idempotent on (conv, id): a send forwarded twice (a restart
                   // replaying the staged sends) is in the outbox once.
                   link.requeue(send.msg.conv, send.msg.id, send.msg.body,
                                send.msg.cts.value_or(send.msg.ts),
                                send.msg.trace.value_or(std::string{}), now, send.msg.from);
                 },
                 [&](const UpstreamReceipt& receipt) {
                   link.pass_receipt(receipt.conv, receipt.user, receipt.kind, receipt.seq);
                 },
                 [&](const UpstreamTyping& typing) {
                   link.pass_typing(typing.conv, typing.user, typing.on);
                 },
                 [&](const UpstreamInterest& interest) {
                   if (!interest.on)
                     link.unsubscribe(interest.conv, now);
                   else if (interest.rewind)
                     link.rewind(interest.conv, interest.after, now);
                   else
                     link.subscribe(interest.conv, interest.after, now);
                 },
                 [&](const UpstreamStop&) { link.close(now); },
                 [&](const UpstreamPresence& presence) {
                   link.pass_presence(presence.conv, presence.user, presence.on);
                 },
             },
             op);
}

}  // namespace waymark
