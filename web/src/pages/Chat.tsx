import { useEffect, useState } from "react";
import { useLocation, useNavigate, useParams } from "react-router";
import { useCreateConversation } from "../api/hooks";
import { ChatView } from "../chat/ChatView";
import { Composer } from "../chat/Composer";
import { ConversationList } from "../chat/ConversationList";
import { ModelPicker } from "../chat/ModelPicker";
import { setPendingFirst } from "../chat/pending";
import { ErrorMessage } from "../components/ErrorMessage";
import { useModels } from "../api/hooks";

function NewConversation() {
  const models = useModels();
  const [model, setModel] = useState<string | null>(null);
  const create = useCreateConversation();
  const navigate = useNavigate();
  const chosen = model ?? models.data?.[0]?.id ?? null;
  return (
    <section className="chat chat-new" aria-label="New conversation">
      <div className="chat-header">
        <h1 className="chat-title">New conversation</h1>
        <ModelPicker value={chosen} onChange={setModel} />
      </div>
      <div className="welcome">
        <p>Ask anything. Replies stream in as they are written.</p>
        {models.error != null && <ErrorMessage error={models.error} />}
      </div>
      {create.error != null && <ErrorMessage error={create.error} />}
      <Composer
        streaming={create.isPending}
        onStop={() => undefined}
        onSend={(content) =>
          create.mutate(
            { model: chosen },
            {
              onSuccess: (conversation) => {
                setPendingFirst(conversation.id, content, chosen);
                navigate(`/chat/${conversation.id}`);
              },
            },
          )
        }
      />
    </section>
  );
}

export function ChatPage() {
  const { conversationId } = useParams();
  const navigate = useNavigate();
  const location = useLocation();
  const [listOpen, setListOpen] = useState(false);
  useEffect(() => setListOpen(false), [location.pathname]);
  return (
    <div className={listOpen ? "chat-layout list-open" : "chat-layout"}>
      <button
        type="button"
        className="list-toggle button-secondary"
        aria-expanded={listOpen}
        aria-controls="conversation-list"
        onClick={() => setListOpen(!listOpen)}
      >
        Conversations
      </button>
      <aside id="conversation-list" className="sidebar" aria-label="Conversation list">
        <ConversationList activeId={conversationId} onNew={() => navigate("/chat")} />
      </aside>
      <div className="chat-main">
        {conversationId ? <ChatView key={conversationId} conversationId={conversationId} /> : <NewConversation />}
      </div>
    </div>
  );
}
