/**
 * A TypeScript client of the LOFT memory API for chat backends (Node 20+, any runtime with
 * `fetch`). The shapes are generated from the service's OpenAPI schema (`./schema.ts`);
 * this file is the small hand-written surface a chat backend needs: context, a chat turn
 * (optionally streamed), adding messages, a session's messages, the summary,
 * recommendations and erasure.
 */
import type { components, operations } from "./schema.js";

export type { components, operations, paths } from "./schema.js";

type Schemas = components["schemas"];
export type ChatRequest = Schemas["ChatRequest"];
export type ChatResponse = Schemas["ChatResponse"];
export type ContextItem = Schemas["ContextItem"];
export type ContextResponse = Schemas["ContextResponse"];
export type CustomerSummary = Schemas["CustomerSummary"];
export type ErasureReceipt = Schemas["ErasureReceipt"];
export type ErrorResponse = Schemas["ErrorResponse"];
export type ImportMessage = Schemas["ImportMessage"];
export type ImportRequest = Schemas["ImportRequest"];
export type ImportResponse = Schemas["ImportResponse"];
export type Provenance = Schemas["Provenance"];
export type RecommendationsResponse = Schemas["RecommendationsResponse"];
export type SessionDeleted = Schemas["SessionDeleted"];
export type SessionMessagesPage = Schemas["SessionMessagesPage"];

type Query<Op extends keyof operations> = NonNullable<operations[Op]["parameters"]["query"]>;
/** `GET /memory/context/{user}`'s parameters other than the query text. */
export type ContextOptions = Omit<Query<"context_memory_context__user_identifier__get">, "query">;
export type SummaryOptions = Query<"user_summary_memory_user__user_identifier__summary_get">;
export type RecommendationOptions = Query<"user_recommendations_memory_user__user_identifier__recommendations_get">;
export type SessionMessagesOptions =
  Query<"session_messages_v1_sessions__user_identifier___session_id__messages_get">;
/** A chat turn's fields other than the customer, the message and `stream`. */
export type ChatOptions = Partial<Omit<ChatRequest, "user_identifier" | "message" | "stream">>;
/** An import's fields other than its messages (`session_id`, `channel`). */
export type AddMessagesOptions = Partial<Omit<ImportRequest, "messages">>;

/** One server-sent event of a streamed chat turn (see `POST /v1/chat` in the API's docs). */
export type ChatEvent =
  | { event: "start"; data: { session_id: string; message_id: number; llm: boolean; replayed: boolean } }
  | { event: "token"; data: { text: string } }
  | { event: "reset"; data: Record<string, never> }
  | { event: "done"; data: ChatResponse }
  | { event: "error"; data: ErrorResponse };

/** An error answer of the API: its HTTP status, `error` code, `detail` and request id. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly detail: string,
    readonly requestId: string | null,
  ) {
    super(`${status} ${error}: ${detail} (request id ${requestId})`);
    this.name = "ApiError";
  }
}

export interface LoftClientOptions {
  /** e.g. `http://127.0.0.1:8001` */
  baseUrl: string;
  /** sent as `Authorization: Bearer …` */
  apiKey?: string;
  headers?: Record<string, string>;
  /** a `fetch` of your own (tests, proxies); the global one by default */
  fetch?: typeof fetch;
}

type Params = Record<string, string | number | boolean | null | undefined>;

export class LoftClient {
  private readonly baseUrl: string;
  private readonly headers: Record<string, string>;
  private readonly fetcher: typeof fetch;

  constructor(options: LoftClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.headers = { ...options.headers };
    if (options.apiKey) this.headers.authorization = `Bearer ${options.apiKey}`;
    this.fetcher = options.fetch ?? globalThis.fetch;
  }

  /** Prompt-ready context for a question: `text` for the prompt, and every item with its provenance. */
  context(user: string, query = "", options: ContextOptions = {}): Promise<ContextResponse> {
    return this.json("GET", `/memory/context/${enc(user)}`, { params: { ...options, query } });
  }

  /** One chat turn: stored, answered with the customer's memory, the reply stored too. */
  chat(user: string, message: string, options: ChatOptions = {}): Promise<ChatResponse> {
    return this.json("POST", "/v1/chat", { body: { ...options, user_identifier: user, message } });
  }

  /**
   * One chat turn, streamed: `start` once the turn is stored, `token`s of the reply (`reset`
   * drops those so far), then `done` with what {@link chat} returns, or `error`. An error
   * before the stream starts (a bad request, a spent budget) is thrown as an {@link ApiError}.
   */
  async *chatStream(user: string, message: string, options: ChatOptions = {}): AsyncGenerator<ChatEvent> {
    const response = await this.send("POST", "/v1/chat", {
      body: { ...options, user_identifier: user, message, stream: true },
    });
    if (!response.body) throw new ApiError(response.status, "empty_stream", "the answer had no body", null);
    const decoder = new TextDecoder();
    let buffered = "";
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const event = parseEvent(buffered.slice(0, end));
          buffered = buffered.slice(end + 2);
          if (event) yield event;
        }
      }
    } finally {
      await reader.cancel(); // a caller that stops early closes the stream (the reply is still stored)
    }
  }

  /** Add messages to a session (created if new; a new one when `session_id` is left out). */
  addMessages(user: string, messages: ImportMessage[], options: AddMessagesOptions = {}): Promise<ImportResponse> {
    return this.json("POST", `/v1/sessions/${enc(user)}/messages`, { body: { ...options, messages } });
  }

  /** A page of one session's messages, in order (`next_cursor` reads the ones before them). */
  sessionMessages(user: string, sessionId: string, options: SessionMessagesOptions = {}): Promise<SessionMessagesPage> {
    return this.json("GET", `/v1/sessions/${enc(user)}/${enc(sessionId)}/messages`, { params: options });
  }

  /** Delete a session's transcript (what the customer's memory learned from it stays). */
  deleteSession(user: string, sessionId: string): Promise<SessionDeleted> {
    return this.json("DELETE", `/v1/sessions/${enc(user)}/${enc(sessionId)}`);
  }

  /** Everything remembered about the customer: name, preferences, purchases, memories. */
  summary(user: string, options: SummaryOptions = {}): Promise<CustomerSummary> {
    return this.json("GET", `/memory/user/${enc(user)}/summary`, { params: options });
  }

  /** Products for the customer, each with the reasons it was chosen. */
  recommendations(user: string, options: RecommendationOptions = {}): Promise<RecommendationsResponse> {
    return this.json("GET", `/memory/user/${enc(user)}/recommendations`, { params: options });
  }

  /** Erase everything about the customer; the receipt says what was deleted (`202`: still pending). */
  erase(user: string): Promise<ErasureReceipt> {
    return this.json("DELETE", `/memory/user/${enc(user)}`);
  }

  private async json<T>(method: string, path: string, request: { params?: Params; body?: unknown } = {}): Promise<T> {
    const response = await this.send(method, path, request);
    return (await response.json()) as T;
  }

  private async send(method: string, path: string, request: { params?: Params; body?: unknown }): Promise<Response> {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(request.params ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
    }
    const headers = { ...this.headers };
    if (request.body !== undefined) headers["content-type"] = "application/json";
    const response = await this.fetcher(url, {
      method,
      headers,
      body: request.body === undefined ? undefined : JSON.stringify(request.body),
    });
    if (!response.ok) throw await apiError(response);
    return response;
  }
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

async function apiError(response: Response): Promise<ApiError> {
  const text = await response.text();
  let body: Partial<ErrorResponse> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === "object") body = parsed as Partial<ErrorResponse>;
  } catch {
    // not JSON (a proxy's page): its text is the detail
  }
  return new ApiError(
    response.status,
    String(body.error ?? "error"),
    String(body.detail ?? text.slice(0, 500)),
    body.request_id ?? response.headers.get("x-request-id"),
  );
}

/** One server-sent event (`event:` and `data:` lines) as a {@link ChatEvent}; comments are skipped. */
function parseEvent(block: string): ChatEvent | null {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (data.length === 0) return null;
  return { event, data: JSON.parse(data.join("\n")) } as ChatEvent;
}
