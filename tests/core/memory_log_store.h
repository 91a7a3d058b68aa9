// MemoryLogStore: the LogStore in memory, for tests and simulations; it can be told to fail
// commits, as a full or failing disk would. One thread at a time.
#pragma once

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "waymark/log_store.h"

namespace waymark {

class MemoryLogStore final : public LogStore {
 public:
  Result<Seq> head(std::string_view tenant, std::string_view conv) override;
  Result<std::vector<StoredMessage>> read_after(std::string_view tenant, std::string_view conv,
                                                Seq after, std::uint32_t limit) override;
  Result<ReceiptCursors> receipts(std::string_view tenant, std::string_view user,
                                  std::string_view conv) override;
  Result<std::vector<StagedMessage>> staged_messages() override;
  Status write(const std::function<Status(LogTxn&)>& body) override;

  // While set, every write() fails with this error and changes nothing (fault injection).
  void fail_writes(std::optional<Error> error) { write_failure_ = std::move(error); }
  std::size_t commits() const { return commits_; }

  struct Data {
    std::map<std::tuple<std::string, std::string, Seq>, std::string> log;
    std::map<std::tuple<std::string, std::string, std::string>, Seq> ids;
    std::map<std::tuple<std::string, std::string, std::string>, ReceiptCursors> receipts;
    std::map<std::pair<std::string, std::string>, Seq> heads;
    std::vector<std::string> audit;  // JSON records, oldest first
    using MessageKey = std::tuple<std::string, std::string, std::string>;  // tenant, conv, id
    std::map<MessageKey, std::pair<std::uint64_t, std::string>> staged;  // -> (order, frame)
    std::map<MessageKey, std::string> dead_letters;
    std::map<MessageKey, bool> unstaged;  // erased in this transaction (staged data only)
    std::uint64_t last_staged = 0;
  };
  const Data& data() const { return data_; }

 private:
  Data data_;
  std::optional<Error> write_failure_;
  std::size_t commits_ = 0;
};

}  // namespace waymark
