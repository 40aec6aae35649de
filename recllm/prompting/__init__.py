"""Prompt templates: discovery, sandboxed rendering to chat messages or a raw prompt, and the
token budget that cuts the oldest history to fit. See prompts/ for the shipped templates."""

from recllm.prompting.check import CheckResult, check_paths, check_template
from recllm.prompting.context import ITEM_FIELDS, VARIABLES, PromptContext, PromptItem, build_context
from recllm.prompting.registry import (DEFAULT_TEMPLATE, builtin_dir, list_templates, load_template,
                                       template_dirs, template_files)
from recllm.prompting.render import (CHARS_PER_TOKEN, PromptTooLong, RenderedPrompt, TokenCounter,
                                     estimate_tokens, render_prompt)
from recllm.prompting.template import PromptTemplate, TemplateHeader, parse_template

__all__ = [
    "CHARS_PER_TOKEN", "CheckResult", "DEFAULT_TEMPLATE", "ITEM_FIELDS", "PromptContext",
    "PromptItem", "PromptTemplate", "PromptTooLong", "RenderedPrompt", "TemplateHeader",
    "TokenCounter", "VARIABLES", "build_context", "builtin_dir", "check_paths", "check_template",
    "estimate_tokens", "list_templates", "load_template", "parse_template", "render_prompt",
    "template_dirs", "template_files",
]
