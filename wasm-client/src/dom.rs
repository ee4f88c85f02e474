//! The few things the page does to its document: set an element's text, its state and its
//! `data-*` attributes, enable a button, and clone a `<template>`. Every id and attribute name comes
//! from [`crate::ui`]; a missing element is skipped (the page never throws over its own markup).

use wasm_bindgen::JsCast;
use web_sys::{Document, DocumentFragment, Element, HtmlButtonElement, HtmlInputElement, HtmlTemplateElement};

use crate::ui::data;

/// The page's document, shared by the page controller and the identity panel.
#[derive(Debug)]
pub(crate) struct Dom {
    pub(crate) document: Document,
}

impl Dom {
    pub(crate) fn element(&self, id: &str) -> Option<Element> {
        self.document.get_element_by_id(id)
    }

    pub(crate) fn set(&self, id: &str, text: &str) {
        if let Some(el) = self.element(id) {
            el.set_text_content(Some(text));
        }
    }

    /// Sets an element's text and its `data-state`, which styles and tests read.
    pub(crate) fn set_state(&self, id: &str, state: &str, text: &str) {
        if let Some(el) = self.element(id) {
            el.set_text_content(Some(text));
            let _ = el.set_attribute(data::STATE, state);
        }
    }

    /// Sets `data-*` attributes of an element.
    pub(crate) fn set_data(&self, id: &str, attributes: &[(&str, &str)]) {
        if let Some(el) = self.element(id) {
            for (name, value) in attributes {
                let _ = el.set_attribute(name, value);
            }
        }
    }

    pub(crate) fn button(&self, id: &str) -> Option<HtmlButtonElement> {
        self.element(id).and_then(|el| el.dyn_into().ok())
    }

    pub(crate) fn enable(&self, id: &str, enabled: bool) {
        if let Some(button) = self.button(id) {
            button.set_disabled(!enabled);
        }
    }

    /// The text in an `<input>`.
    pub(crate) fn input_value(&self, id: &str) -> Option<String> {
        self.element(id)?.dyn_into::<HtmlInputElement>().ok().map(|input| input.value())
    }

    pub(crate) fn set_input_value(&self, id: &str, value: &str) {
        if let Some(input) = self.element(id).and_then(|el| el.dyn_into::<HtmlInputElement>().ok()) {
            input.set_value(value);
        }
    }

    /// A fresh copy of the `<template id="{id}">`'s content.
    pub(crate) fn clone_template(&self, id: &str) -> Option<DocumentFragment> {
        let template: HtmlTemplateElement = self.element(id)?.dyn_into().ok()?;
        template.content().clone_node_with_deep(true).ok()?.dyn_into().ok()
    }
}
