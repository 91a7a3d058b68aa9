// Overloaded{lambdas...}: one visitor for std::visit made of a lambda per alternative. Not public
// API: the core's sources include it directly, the rest of the tree through waymark_core_internal.
#pragma once

namespace waymark {

template <typename... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <typename... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace waymark
