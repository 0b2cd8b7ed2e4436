// A component that renders again only when `same(previous props, next props)` says they differ.

import { Component, h } from "preact";

export function memo(render, same) {
  class Memo extends Component {
    shouldComponentUpdate(next) {
      return !same(this.props, next);
    }

    render(props) {
      return h(render, props);
    }
  }
  return Memo;
}
