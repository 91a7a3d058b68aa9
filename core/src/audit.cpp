// Audit records as JSON.
#include "waymark/audit.h"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace waymark {

boost::json::object audit_object(const AuditRecord& record) {
  boost::json::object out;
  out["ts"] = record.ts;
  out["event"] = record.event;
  auto put = [&](const char* key, const std::optional<std::string>& value) {
    if (value) out[key] = *value;
  };
  put("tenant", record.tenant);
  put("user", record.user);
  put("conv", record.conv);
  put("frame", record.frame);
  put("peer", record.peer);
  put("detail", record.detail);
  return out;
}

std::string audit_json(const AuditRecord& record) {
  return boost::json::serialize(audit_object(record));
}

}  // namespace waymark
