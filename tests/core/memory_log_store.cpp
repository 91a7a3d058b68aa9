// The in-memory LogStore: a transaction stages its writes and applies them on commit.
#include "core/memory_log_store.h"

#include <algorithm>

#include "waymark/stored_record.h"

namespace waymark {
namespace {

class MemoryTxn final : public LogTxn {
 public:
  explicit MemoryTxn(const MemoryLogStore::Data& committed) : committed_(committed) {}

  Result<Seq> head(std::string_view tenant, std::string_view conv) override {
    std::pair<std::string, std::string> key{std::string(tenant), std::string(conv)};
    if (auto it = staged_.heads.find(key); it != staged_.heads.end()) return it->second;
    if (auto it = committed_.heads.find(key); it != committed_.heads.end()) return it->second;
    return Seq{0};
  }

  Result<std::optional<Seq>> find_id(std::string_view tenant, std::string_view conv,
                                     std::string_view id) override {
    std::tuple<std::string, std::string, std::string> key{std::string(tenant), std::string(conv),
                                                          std::string(id)};
    if (auto it = staged_.ids.find(key); it != staged_.ids.end()) return std::optional<Seq>(it->second);
    if (auto it = committed_.ids.find(key); it != committed_.ids.end())
      return std::optional<Seq>(it->second);
    return std::optional<Seq>();
  }

  Result<std::optional<std::string>> message(std::string_view tenant, std::string_view conv,
                                             Seq seq) override {
    std::tuple<std::string, std::string, Seq> key{std::string(tenant), std::string(conv), seq};
    if (auto it = staged_.log.find(key); it != staged_.log.end())
      return std::optional<std::string>(it->second);
    if (auto it = committed_.log.find(key); it != committed_.log.end())
      return std::optional<std::string>(it->second);
    return std::optional<std::string>();
  }

  Status append(std::string_view tenant, std::string_view conv, Seq seq, std::string_view id,
                std::string_view record) override {
    auto current = head(tenant, conv);
    if (!current.ok()) return current.error();
    if (seq != current.value() + 1)
      return make_error(ErrorCode::unavailable, "store: append out of order");
    staged_.log[{std::string(tenant), std::string(conv), seq}] = std::string(record);
    staged_.ids[{std::string(tenant), std::string(conv), std::string(id)}] = seq;
    staged_.heads[{std::string(tenant), std::string(conv)}] = seq;
    return ok_status();
  }

  Result<ReceiptCursors> receipts(std::string_view tenant, std::string_view user,
                                  std::string_view conv) override {
    std::tuple<std::string, std::string, std::string> key{std::string(tenant), std::string(user),
                                                          std::string(conv)};
    if (auto it = staged_.receipts.find(key); it != staged_.receipts.end()) return it->second;
    if (auto it = committed_.receipts.find(key); it != committed_.receipts.end())
      return it->second;
    return ReceiptCursors{};
  }

  Status put_receipts(std::string_view tenant, std::string_view user, std::string_view conv,
                      const ReceiptCursors& cursors) override {
    staged_.receipts[{std::string(tenant), std::string(user), std::string(conv)}] = cursors;
    return ok_status();
  }

  Status append_audit(std::string_view record) override {
    staged_.audit.emplace_back(record);
    return ok_status();
  }

  Result<std::optional<std::string>> staged(std::string_view tenant, std::string_view conv,
                                            std::string_view id) override {
    MemoryLogStore::Data::MessageKey key{std::string(tenant), std::string(conv), std::string(id)};
    if (staged_.unstaged.count(key)) return std::optional<std::string>();
    if (auto it = staged_.staged.find(key); it != staged_.staged.end())
      return std::optional<std::string>(it->second.second);
    if (auto it = committed_.staged.find(key); it != committed_.staged.end())
      return std::optional<std::string>(it->second.second);
    return std::optional<std::string>();
  }

  Status put_staged(std::string_view tenant, std::string_view conv, std::string_view id,
                    std::string_view frame) override {
    MemoryLogStore::Data::MessageKey key{std::string(tenant), std::string(conv), std::string(id)};
    staged_.unstaged.erase(key);
    std::uint64_t order = std::max(committed_.last_staged, staged_.last_staged) + 1;
    staged_.last_staged = order;
    staged_.staged[key] = {order, std::string(frame)};
    return ok_status();
  }

  Status erase_staged(std::string_view tenant, std::string_view conv, std::string_view id) override {
    MemoryLogStore::Data::MessageKey key{std::string(tenant), std::string(conv), std::string(id)};
    staged_.staged.erase(key);
    staged_.unstaged[key] = true;
    return ok_status();
  }

  Status put_dead_letter(std::string_view tenant, std::string_view conv, std::string_view id,
                         std::string_view record) override {
    staged_.dead_letters[{std::string(tenant), std::string(conv), std::string(id)}] = std::string(record);
    return ok_status();
  }

  void apply_to(MemoryLogStore::Data& data) {
    for (auto& [k, v] : staged_.unstaged) data.staged.erase(k);
    for (auto& [k, v] : staged_.staged) data.staged[k] = std::move(v);
    for (auto& [k, v] : staged_.dead_letters) data.dead_letters[k] = std::move(v);
    data.last_staged = std::max(data.last_staged, staged_.last_staged);
    for (auto& record : staged_.audit) data.audit.push_back(std::move(record));
    for (auto& [k, v] : staged_.log) data.log[k] = std::move(v);
    for (auto& [k, v] : staged_.ids) data.ids[k] = v;
    for (auto& [k, v] : staged_.receipts) data.receipts[k] = v;
    for (auto& [k, v] : staged_.heads) data.heads[k] = v;
  }

 private:
  const MemoryLogStore::Data& committed_;
  MemoryLogStore::Data staged_;
};

}  // namespace

Result<Seq> MemoryLogStore::head(std::string_view tenant, std::string_view conv) {
  auto it = data_.heads.find({std::string(tenant), std::string(conv)});
  return it == data_.heads.end() ? Seq{0} : it->second;
}

Result<std::vector<StoredMessage>> MemoryLogStore::read_after(std::string_view tenant,
                                                              std::string_view conv, Seq after,
                                                              std::uint32_t limit) {
  std::vector<StoredMessage> out;
  auto it = data_.log.upper_bound({std::string(tenant), std::string(conv), after});
  for (; it != data_.log.end() && out.size() < limit; ++it) {
    const auto& [t, c, seq] = it->first;
    if (t != tenant || c != conv) break;
    auto frame = record_frame(it->second, conv, seq);
    if (!frame.ok()) return frame.error();
    out.push_back(StoredMessage{seq, std::move(frame).value()});
  }
  return out;
}

Result<ReceiptCursors> MemoryLogStore::receipts(std::string_view tenant, std::string_view user,
                                                std::string_view conv) {
  auto it = data_.receipts.find({std::string(tenant), std::string(user), std::string(conv)});
  return it == data_.receipts.end() ? ReceiptCursors{} : it->second;
}

Result<std::vector<StagedMessage>> MemoryLogStore::staged_messages() {
  std::map<std::uint64_t, StagedMessage> ordered;
  for (const auto& [key, value] : data_.staged) {
    const auto& [tenant, conv, id] = key;
    ordered[value.first] = StagedMessage{tenant, conv, id, value.second};
  }
  std::vector<StagedMessage> out;
  for (auto& [order, message] : ordered) out.push_back(std::move(message));
  return out;
}

Status MemoryLogStore::write(const std::function<Status(LogTxn&)>& body) {
  if (write_failure_) return *write_failure_;
  MemoryTxn txn(data_);
  Status status = body(txn);
  if (!status.ok()) return status;
  txn.apply_to(data_);
  ++commits_;
  return ok_status();
}

}  // namespace waymark
