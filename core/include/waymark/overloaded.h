// Overloaded{lambdas...}: one visitor for std::visit made of a lambda per alternative.
#pragma once

namespace waymark {

template <typename... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <typename... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace waymark
